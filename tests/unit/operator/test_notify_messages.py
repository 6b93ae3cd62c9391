"""Notification message model and the two receiver formats (Slack-compatible, generic JSON)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from tryon_operator.announce.notify import Notification, Target, generic_payload, slack_payload
from tryon_operator.announce.told import Told
from tryon_operator.api.builders import Owner

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def rejected(kind="rejected", channel=None, **kw) -> Notification:
    base = dict(
        type="Warning",
        message="version 7 on green rejected before promotion (SmokeTestFailed): blank <output>",
        reason="SmokeTestFailed",
        owner=Owner(name="dress", namespace="shop", uid="u-1"),
        registered_model="tryon-vton",
        version="7",
        previous_version="6",
        color="green",
        previous_color="blue",
        evidence={"smoke": "smoke test failed: blank output", "readyPods": "1/1"},
        at=T0,
    )
    base.update(kw)
    return Notification(Told(**base), kind, channel=channel)


def test_slack_payload_has_headline_colour_and_fields():
    body = slack_payload(rejected())
    assert body["text"].startswith(":no_entry: *Rejected*: TryOnModel `shop/dress` version 7")
    (att,) = body["attachments"]
    assert att["color"] == "warning"
    assert att["ts"] == int(T0.timestamp())
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Version"] == "6 → 7"
    assert fields["Colour"] == "blue → green"
    assert fields["Reason"] == "SmokeTestFailed"
    assert fields["Registered model"] == "tryon-vton"
    assert fields["smoke"] == "smoke test failed: blank output"
    # Slack's control characters are escaped, so a message cannot forge a link or mention
    assert "&lt;output&gt;" in att["text"] and "<output>" not in att["text"]
    assert "channel" not in body


def test_slack_channel_override_and_severity_per_kind():
    assert slack_payload(rejected(channel="#shop"))["channel"] == "#shop"
    colours = {
        kind: slack_payload(rejected(kind=kind))["attachments"][0]["color"]
        for kind in ("rollout_started", "promoted", "rolled_back", "degraded", "recovered")
    }
    assert colours == {
        "rollout_started": "#439FE0",
        "promoted": "good",
        "rolled_back": "danger",
        "degraded": "danger",
        "recovered": "good",
    }


def test_generic_payload_is_flat_documented_json():
    body = generic_payload(rejected())
    assert body["schema"] == "tryon.dev/notification/v1"
    assert body["kind"] == "rejected" and body["severity"] == "warning"
    assert body["tryOnModel"] == {"namespace": "shop", "name": "dress", "uid": "u-1"}
    assert (body["version"], body["previousVersion"]) == ("7", "6")
    assert (body["color"], body["previousColor"]) == ("green", "blue")
    assert body["occurredAt"] == "2026-11-22T03:00:00+00:00"
    assert body["evidence"]["readyPods"] == "1/1"
    assert len(body["id"]) == 20
    json.dumps(body)  # serialisable as is


def test_dedup_key_ignores_time_but_id_does_not():
    a, b = rejected(), rejected(at=datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
    assert a.dedup_key() == b.dedup_key()
    assert a.id != b.id
    assert rejected(version="8").dedup_key() != a.dedup_key()


def test_target_repr_and_body_never_show_the_url():
    url = "https://hooks.slack.com/services/T000/B000/s3cr3tt0ken"
    target = Target("slack", "slack", url)
    assert "s3cr3tt0ken" not in repr(target)
    assert b"s3cr3tt0ken" not in target.body(rejected())
    assert json.loads(Target("webhook", "json", url).body(rejected()))["kind"] == "rejected"
