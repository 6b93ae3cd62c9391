"""The notification dispatcher against a real HTTP receiver on loopback: message contents,
retries after 5xx (honouring Retry-After), no retry storm against a dead webhook, isolation
between targets, failures counted and reported, and no webhook secret in any log line."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time

import pytest
from prometheus_client import CollectorRegistry
from tryon_operator.announce.notify import (
    DeliveryPolicy,
    Dispatcher,
    Notification,
    NotifyMetrics,
    Target,
)
from tryon_operator.announce.told import Told
from tryon_operator.api.builders import Owner

from .webhook_receiver import Answer, running_receiver, until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECRET = "B0000/XyZsecretTOKEN42"
FAST = dict(backoff_base_seconds=0.05, backoff_max_seconds=0.2, timeout_seconds=1.0)


def note(version: str = "7", kind: str = "rejected", targets: frozenset[str] | None = None,
         channel: str | None = None) -> Notification:
    told = Told(
        "Warning", "SmokeTestFailed", owner=Owner(name="dress", namespace="shop", uid="u-1"),
        version=version, previous_version="6", color="green", previous_color="blue",
        message=f"version {version} on green rejected before promotion (SmokeTestFailed)",
        registered_model="tryon-vton", evidence={"smoke": "blank output"},
    )
    return Notification(told, kind, targets, channel)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def receiver():
    with running_receiver() as r:
        yield r


async def test_slack_and_generic_messages_arrive_with_their_contents(receiver):
    registry = CollectorRegistry()
    dispatcher = Dispatcher(
        [Target("slack", "slack", receiver.url(f"/services/T0/{SECRET}")),
         Target("webhook", "json", receiver.url("/hook"), headers=(("X-Token", "t"),))],
        DeliveryPolicy(**FAST), metrics=NotifyMetrics(registry))
    await dispatcher.start()
    try:
        dispatcher.submit(note(channel="#dress"))
        assert await dispatcher.join(10)
    finally:
        await dispatcher.stop()

    (slack,) = receiver.on(f"/services/T0/{SECRET}")
    assert slack.body["text"] == ":no_entry: *Rejected*: TryOnModel `shop/dress` version 7"
    assert slack.body["channel"] == "#dress"
    fields = {f["title"]: f["value"] for f in slack.body["attachments"][0]["fields"]}
    assert fields["Version"] == "6 → 7" and fields["Reason"] == "SmokeTestFailed"
    assert slack.headers["Content-Type"] == "application/json"
    (hook,) = receiver.on("/hook")
    assert hook.body["kind"] == "rejected" and hook.body["version"] == "7"
    assert hook.body["evidence"] == {"smoke": "blank output"}
    assert hook.headers["X-Token"] == "t"
    assert hook.headers["X-Tryon-Notification-Id"] == hook.body["id"]
    assert value(registry, "tryon_notifications_sent_total", target="slack") == 1
    assert value(registry, "tryon_notifications_sent_total", target="webhook") == 1


async def test_retried_after_500s_then_delivered_once(receiver):
    receiver.script = [Answer(500), Answer(502)]
    registry = CollectorRegistry()
    dispatcher = Dispatcher([Target("webhook", "json", receiver.url("/hook"))],
                            DeliveryPolicy(**FAST), metrics=NotifyMetrics(registry),
                            rng=random.Random(1))
    await dispatcher.start()
    try:
        dispatcher.submit(note())
        assert await dispatcher.join(10)
    finally:
        await dispatcher.stop()
    hits = receiver.on("/hook")
    assert len(hits) == 3
    assert len({h.body["id"] for h in hits}) == 1  # the same message, idempotency key kept
    assert value(registry, "tryon_notification_attempts_total",
                 target="webhook", result="http_500") == 1
    assert value(registry, "tryon_notifications_sent_total", target="webhook") == 1
    assert value(registry, "tryon_notifications_failed_total",
                 target="webhook", reason="http_502") == 0


async def test_retry_after_is_honoured(receiver):
    receiver.script = [Answer(429, (("Retry-After", "1"),))]
    dispatcher = Dispatcher([Target("webhook", "json", receiver.url("/hook"))],
                            DeliveryPolicy(**FAST))
    await dispatcher.start()
    try:
        dispatcher.submit(note())
        assert await dispatcher.join(10)
    finally:
        await dispatcher.stop()
    first, second = receiver.on("/hook")
    # the backoff alone would have retried after at most 0.05 s
    assert second.at - first.at >= 0.95


async def test_a_dead_webhook_gets_no_retry_storm_and_failures_are_reported(receiver, caplog):
    receiver.default = Answer(500)
    registry = CollectorRegistry()
    failures: list[tuple[str, str, str]] = []
    policy = DeliveryPolicy(queue_size=5, max_attempts=3, breaker_threshold=3,
                            breaker_cooldown_seconds=30, dedup_seconds=0, **FAST)
    dispatcher = Dispatcher(
        [Target("webhook", "json", receiver.url("/hook"))], policy,
        metrics=NotifyMetrics(registry),
        on_failure=lambda n, target, why: failures.append((n.told.version or "", target, why)))
    await dispatcher.start()
    try:
        started = time.monotonic()
        for i in range(50):  # a burst of decisions while the receiver is down
            dispatcher.submit(note(version=str(i)))
        assert time.monotonic() - started < 0.5  # submitting never waits for delivery
        await until(lambda: failures, 10, "the first message given up")
        # the breaker is open now: watch a while longer and count what reaches the receiver
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # an invariant watched over a bounded window
            assert len(receiver.on("/hook")) <= 3
            await asyncio.sleep(0.05)
        assert len(receiver.on("/hook")) == 3
        assert value(registry, "tryon_notification_circuit_open", target="webhook") == 1
    finally:
        await dispatcher.stop(drain_seconds=0)
    assert failures == [("0", "webhook", "http_500")]
    assert value(registry, "tryon_notifications_failed_total",
                 target="webhook", reason="http_500") == 1
    # the burst filled the bounded queue (5) and the rest was dropped on arrival; the worker
    # then took one (given up above) and the 4 still waiting were dropped at shutdown
    assert value(registry, "tryon_notifications_dropped_total",
                 target="webhook", reason="queue_full") == 45
    assert value(registry, "tryon_notifications_dropped_total",
                 target="webhook", reason="shutdown") == 4
    assert caplog.text.count("is full") == 1  # one warning per overflow, not one per message


async def test_a_stalled_target_does_not_hold_up_the_other(receiver):
    receiver.default = Answer(200)
    receiver.script = [Answer(200, stall_seconds=20)]  # first request (whichever) stalls
    registry = CollectorRegistry()
    dispatcher = Dispatcher(
        [Target("slow", "json", receiver.url("/slow")),
         Target("slack", "slack", receiver.url("/slack"))],
        DeliveryPolicy(max_attempts=1, **{**FAST, "timeout_seconds": 3.0}),
        metrics=NotifyMetrics(registry))
    await dispatcher.start()
    try:
        dispatcher.submit(note(targets=frozenset({"slow"})))
        await until(lambda: receiver.on("/slow"), 5, "the slow target's request")
        sent_at = time.monotonic()
        dispatcher.submit(note(version="8", targets=frozenset({"slack"})))
        await until(lambda: receiver.on("/slack"), 5, "the Slack message")
        assert time.monotonic() - sent_at < 2.0  # not behind the stalled one
        await until(lambda: value(registry, "tryon_notifications_failed_total",
                                  target="slow", reason="timeout"), 10, "slow target timed out")
    finally:
        await dispatcher.stop(drain_seconds=0)


async def test_no_webhook_secret_in_any_log_line(receiver, caplog):
    receiver.default = Answer(503)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    targets = [
        Target("slack", "slack", receiver.url(f"/services/T0/{SECRET}")),
        Target("webhook", "json", f"http://127.0.0.1:{closed}/hooks/{SECRET}"),
    ]
    dispatcher = Dispatcher(targets, DeliveryPolicy(max_attempts=2, **FAST))
    await dispatcher.start()
    try:
        dispatcher.submit(note())
        assert await dispatcher.join(10)
    finally:
        await dispatcher.stop()
        logging.getLogger("httpx").setLevel(logging.NOTSET)
    assert len(receiver.on(f"/services/T0/{SECRET}")) == 2
    assert "not delivered to slack after 2 attempt(s): http_503" in caplog.text
    assert "not delivered to webhook after 2 attempt(s): ConnectError" in caplog.text
    assert "XyZsecretTOKEN42" not in caplog.text
    assert all("XyZsecretTOKEN42" not in repr(t) for t in targets)


async def test_on_done_runs_once_after_every_target_is_done_and_not_when_stopped_first(receiver):
    targets = [
        Target("slack", "slack", receiver.url("/a")),
        Target("hook", "json", receiver.url("/b")),
    ]
    dispatcher = Dispatcher(targets, DeliveryPolicy(**FAST))
    done: list[str] = []
    await dispatcher.start()
    try:
        dispatcher.submit(note(version="1"), lambda: done.append("1"))
        assert await dispatcher.join(10)
        await until(lambda: done == ["1"], 5, "on_done after both targets")
        receiver.default = Answer(200, stall_seconds=5)
        dispatcher.submit(note(version="2"), lambda: done.append("2"))
        await asyncio.sleep(0.5)  # both requests are open at the stalling receiver
    finally:
        await dispatcher.stop(drain_seconds=0)  # version 2 is still being sent: it is dropped
    await asyncio.sleep(0.2)
    assert done == ["1"]
