"""A decision's notification goes out at least once across leaders: a replica that stopped
between posting the decision's Event and sending its notification leaves it to the next one,
which sends it unless the Event says it went out (``tryon.dev/notified``); every copy carries the
same id, so a receiver can drop a repeat."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tryon_operator.announce.announcer import Announcer
from tryon_operator.announce.audit import AuditLog
from tryon_operator.announce.notify import Notification
from tryon_operator.announce.told import Told
from tryon_operator.api.builders import Owner
from tryon_operator.api.errors import NotLeaderError
from tryon_operator.reconcile.events import EventSink

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="uid-1")
PROMOTED = Told("Normal", "Promoted", "traffic flipped to green (version 2)", version="2")
KEY = "Promoted/2/rollout-1"


class Events:
    """The Events a kube port holds, by decision key, with their notified mark."""

    def __init__(self) -> None:
        self.notified: dict[str, bool] = {}
        self.leading = True

    def emit_event(self, owner, type_, reason, message, key=None) -> bool:
        if key in self.notified:
            return False
        self.notified[key] = False
        return True

    def event_notified(self, owner: Owner, key: str) -> bool:
        return self.notified.get(key, True)

    def mark_event_notified(self, owner: Owner, key: str) -> None:
        if not self.leading:
            raise NotLeaderError("lost the Lease")
        self.notified[key] = True


class Outbox:
    """A notifier that holds each message with its done-callback until told to finish it."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.pending: list[Callable[[], None]] = []

    def submit(self, n: Notification, on_done: Callable[[], None] | None = None) -> None:
        self.sent.append(n)
        if on_done is not None:
            self.pending.append(on_done)

    def finish_all(self) -> None:
        while self.pending:
            self.pending.pop(0)()


def sink(events: Events, outbox: Outbox) -> EventSink:
    return EventSink(events, Announcer(AuditLog(), outbox))  # type: ignore[arg-type]


def test_a_sent_notification_marks_its_event_notified() -> None:
    events, outbox = Events(), Outbox()
    sink(events, outbox).tell(OWNER, PROMOTED, KEY)
    assert [n.kind for n in outbox.sent] == ["promoted"]
    assert events.notified[KEY] is False  # not before every target is done with it
    outbox.finish_all()
    assert events.notified[KEY] is True


def test_a_decision_redone_after_its_notification_went_out_sends_nothing() -> None:
    events, outbox = Events(), Outbox()
    sink(events, outbox).tell(OWNER, PROMOTED, KEY)
    outbox.finish_all()
    second = Outbox()
    sink(events, second).tell(OWNER, PROMOTED, KEY)  # the next leader redoes the step
    assert second.sent == []


def test_the_next_leader_sends_a_notification_the_stopped_one_never_confirmed() -> None:
    events, first = Events(), Outbox()
    sink(events, first).tell(OWNER, PROMOTED, KEY)  # Event posted; the replica dies unsent
    second = Outbox()
    sink(events, second).tell(OWNER, PROMOTED, KEY)
    assert [n.told.version for n in second.sent] == ["2"]
    second.finish_all()
    assert events.notified[KEY] is True


def test_every_copy_of_a_decisions_notification_has_the_same_id() -> None:
    events, first = Events(), Outbox()
    sink(events, first).tell(OWNER, PROMOTED, KEY)  # sent, then the replica dies before the mark
    second = Outbox()
    sink(events, second).tell(OWNER, PROMOTED, KEY)
    assert [n.id for n in second.sent] == [n.id for n in first.sent]
    other = Outbox()
    sink(Events(), other).tell(OWNER, PROMOTED, "Promoted/2/rollout-2")
    assert other.sent[0].id != first.sent[0].id


def test_a_replica_that_lost_the_lease_leaves_the_mark_to_the_next_one() -> None:
    events, outbox = Events(), Outbox()
    sink(events, outbox).tell(OWNER, PROMOTED, KEY)
    events.leading = False
    outbox.finish_all()  # NotLeaderError is swallowed: nothing breaks
    assert events.notified[KEY] is False


def test_decisions_that_notify_nobody_are_never_read_back() -> None:
    class Unreadable(Events):
        def event_notified(self, owner: Owner, key: str) -> bool:
            raise AssertionError("read back a decision nobody is notified of")

    events = Unreadable()
    scaled = Told("Normal", "ScaledDown", "blue scaled to 0", version="1")
    sink(events, Outbox()).tell(OWNER, scaled, "ScaledDown/1")
    sink(events, Outbox()).tell(OWNER, scaled, "ScaledDown/1")
