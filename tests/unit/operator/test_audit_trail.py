"""Audit records (one JSON line each) and the announcer that turns the reconciler's decisions
into audit lines and notifications, honouring the per-object annotations."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime
from typing import get_args

import pytest
from tryon_operator.announce.announcer import Announcer, options_from_annotations
from tryon_operator.announce.audit import (
    AUDIT_LOGGER,
    AuditLog,
    audit_line,
    configure_audit_logging,
    parse_audit_line,
)
from tryon_operator.announce.notify import Notification
from tryon_operator.announce.told import Told
from tryon_operator.api.builders import Owner
from tryon_operator.api.vocabulary import ANNOUNCED_AS, EventReason

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="uid-1")


class Inbox:
    """A notifier that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[Notification] = []

    def submit(self, n: Notification, on_done=None) -> None:
        self.items.append(n)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def captured():
    logger = logging.getLogger("test.audit." + str(id(object())))
    logger.propagate = False
    handler = Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return AuditLog(logger), handler.lines


def test_record_is_one_json_line_with_every_field():
    told = Told(
        "Warning",
        "ProgressDeadlineExceeded",  # type: ignore[arg-type]
        "green (version 3) had 0/1 Ready pods after 20s\nsecond line",
        decision="reject",
        owner=OWNER,
        registered_model="tryon-vton",
        version="3",
        previous_version="2",
        color="green",
        previous_color="blue",
        evidence={"readyPods": "0/1", "notReadyPods": "dress-green-abc"},
        at=datetime(2026, 11, 22, 3, 0, tzinfo=UTC),
    )
    line = audit_line(told)
    assert "\n" not in line
    data = json.loads(line)
    assert data == {
        "audit": "tryon.dev/audit/v1",
        "ts": "2026-11-22T03:00:00+00:00",
        "decision": "reject",
        "tryOnModel": "shop/dress",
        "uid": "uid-1",
        "registeredModel": "tryon-vton",
        "version": "3",
        "previousVersion": "2",
        "color": "green",
        "previousColor": "blue",
        "reason": "ProgressDeadlineExceeded",
        "eventType": "Warning",
        "message": "green (version 3) had 0/1 Ready pods after 20s\nsecond line",
        "evidence": {"readyPods": "0/1", "notReadyPods": "dress-green-abc"},
    }
    assert parse_audit_line("2026-11-22 INFO x: " + line) == data
    assert parse_audit_line('{"not": "audit"}') is None
    assert parse_audit_line("plain text") is None


def test_configured_handler_prints_bare_json_once():
    stream = io.StringIO()
    logger = logging.getLogger(AUDIT_LOGGER)
    saved = (list(logger.handlers), logger.propagate, logger.level)
    try:
        logger.handlers.clear()
        first = configure_audit_logging(stream)
        assert configure_audit_logging(stream) is first  # idempotent
        AuditLog().record(Told("Normal", "SelfHealed", "selector restored", decision="heal",
                               owner=OWNER))
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line)["decision"] == "heal"
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate, logger.level = saved[1], saved[2]


def test_announcer_audits_every_decision_and_notifies_the_chosen_ones(captured):
    audit, lines = captured
    inbox = Inbox()
    announcer = Announcer(audit, inbox)
    announcer.observe(OWNER, {}, "tryon-vton")
    announcer.decision(OWNER, Told("Normal", "ModelResolved", "alias production is version 2",
                       version="2"))
    announcer.decision(OWNER, Told("Normal", "RolloutStarted", "rolling out 2", version="2",
                       previous_version="1", color="green", previous_color="blue"))
    announcer.decision(OWNER, Told("Normal", "Promoted", "flipped", version="2",
                       previous_version="1", color="green", previous_color="blue"))
    announcer.decision(OWNER, Told("Warning", "RolledBack", "lost readiness", decision="rollback",
                       version="2", color="green", evidence={"readyPods": "0/1", "none": None}))
    announcer.decision(OWNER, Told("Warning", "SelfHealed", "selector restored"))

    records = [json.loads(line) for line in lines]
    assert [r["decision"] for r in records] == ["resolve", "scale", "flip", "rollback", "heal"]
    assert all(r["registeredModel"] == "tryon-vton" for r in records)
    assert records[3]["evidence"] == {"readyPods": "0/1"}
    assert [(n.kind, n.told.version) for n in inbox.items] == [
        ("rollout_started", "2"), ("promoted", "2"), ("rolled_back", "2")]
    assert inbox.items[2].reason == "RolledBack" and inbox.items[1].reason == ""


def test_annotations_select_targets_kinds_channel_or_silence(captured):
    audit, lines = captured
    inbox = Inbox()
    announcer = Announcer(audit, inbox, kinds=frozenset({"rejected", "promoted"}))
    announcer.observe(OWNER, {"tryon.dev/notify": "webhook",
                              "tryon.dev/notify-slack-channel": "#dress"}, None)
    announcer.decision(OWNER, Told("Normal", "RolloutStarted", "x", version="2"))  # kind not wanted
    announcer.decision(OWNER, Told("Warning", "RolledBack", "smoke failed", version="2"))
    (n,) = inbox.items
    assert (n.kind, n.targets, n.channel) == ("rejected", frozenset({"webhook"}), "#dress")

    announcer.observe(OWNER, {"tryon.dev/notify": "off"}, None)
    announcer.decision(OWNER, Told("Normal", "Promoted", "flipped", version="3"))
    assert len(inbox.items) == 1  # silenced, yet still audited
    assert len(lines) == 3

    announcer.observe(OWNER, {"tryon.dev/notify-events": "promoted, bogus"}, None)
    announcer.decision(OWNER, Told("Warning", "RolledBack", "again", version="4"))
    announcer.decision(OWNER, Told("Normal", "Promoted", "flipped", version="4"))
    assert [n.kind for n in inbox.items] == ["rejected", "promoted"]


def test_options_and_kind_mapping():
    assert options_from_annotations(None).enabled
    assert options_from_annotations({"tryon.dev/notify": "true"}).targets is None
    assert not options_from_annotations({"tryon.dev/notify": "False"}).enabled
    assert options_from_annotations({"tryon.dev/notify": "slack, webhook"}).targets == \
        frozenset({"slack", "webhook"})
    assert told("RolledBack", "reject").notification_kind == "rejected"
    assert told("RolledBack", "rollback").notification_kind == "rolled_back"
    assert told("Degraded", "degrade").notification_kind == "degraded"
    assert told("Recovered", "recover").notification_kind == "recovered"
    assert told("SelfHealed", "heal").notification_kind is None


def told(reason: EventReason, decision=None) -> Told:
    return Told("Normal", reason, "x", decision=decision)


def test_every_event_reason_has_an_audit_verb_and_notification_row():
    assert set(ANNOUNCED_AS) == set(get_args(EventReason))


def test_a_reason_outside_the_vocabulary_is_audited_as_other_and_notifies_nobody():
    stray = told("NoSuchReason")  # type: ignore[arg-type]
    assert (stray.audit_verb, stray.notification_kind) == ("other", None)


def test_a_broken_notifier_never_breaks_the_caller(captured):
    audit, lines = captured

    class Broken:
        def submit(self, n: Notification, on_done=None) -> None:
            raise RuntimeError("boom")

    announcer = Announcer(audit, Broken())
    announcer.decision(OWNER, Told("Normal", "Promoted", "flipped", version="2"))  # does not raise
    assert json.loads(lines[0])["decision"] == "flip"
