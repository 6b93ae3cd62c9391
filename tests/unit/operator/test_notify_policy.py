"""Dispatcher pieces that need no receiver: Retry-After, backoff with jitter, circuit breaker,
deduplication and what happens to a message when the dispatcher is not running."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from tryon_operator.announce.notify import (
    DeliveryPolicy,
    Dispatcher,
    Notification,
    NotifyMetrics,
    Target,
)
from tryon_operator.announce.notify import parse_retry_after as pra
from tryon_operator.announce.notify.delivery import Breaker
from tryon_operator.announce.told import Told
from tryon_operator.api.builders import Owner

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def note(targets: frozenset[str] | None = None, **kw) -> Notification:
    base = dict(type="Normal", reason="Promoted", message="flipped", version="2",
                owner=Owner(name="dress", namespace="shop", uid="u-1"))
    base.update(kw)
    return Notification(Told(**base), "promoted", targets)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("5", 5.0),
        (" 120 ", 120.0),
        ("Sun, 22 Nov 2026 03:00:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 02:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("-3", None),
        (None, None),
        ("", None),
    ],
)
def test_retry_after_seconds_and_http_dates(header, expected):
    assert pra(header, NOW) == expected


def test_backoff_doubles_with_equal_jitter_and_is_capped():
    policy = DeliveryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=8.0)
    dispatcher = Dispatcher([], policy, rng=random.Random(7))
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [dispatcher._retry_delay(attempt, None) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1  # jittered, not lock-step
    # Retry-After wins over the backoff, within a cap
    assert dispatcher._retry_delay(1, 42.0) == 42.0
    assert dispatcher._retry_delay(1, 10_000.0) == policy.retry_after_max_seconds


def test_breaker_opens_after_threshold_and_cooldown_doubles_up_to_a_cap():
    breaker = Breaker(threshold=3, base_cooldown=10.0, max_cooldown=25.0)
    assert [breaker.failure(100.0) for _ in range(2)] == [False, False]
    assert breaker.open_until == 0.0
    assert breaker.failure(100.0) is True
    assert breaker.open_until == 110.0
    assert breaker.failure(110.0) is True  # failed probe: longer cooldown
    assert breaker.open_until == 130.0
    assert breaker.failure(130.0) is True
    assert breaker.open_until == 155.0  # capped at 25 s
    breaker.success()
    assert (breaker.failures, breaker.open_until) == (0, 0.0)
    assert breaker.failure(200.0) is False


def test_duplicates_within_the_window_are_suppressed_and_counted():
    clock = [1000.0]
    registry = CollectorRegistry()
    dispatcher = Dispatcher(
        [Target("slack", "slack", "http://127.0.0.1:9/x")],
        DeliveryPolicy(dedup_seconds=60),
        metrics=NotifyMetrics(registry),
        monotonic=lambda: clock[0],
    )
    dispatcher.submit(note())
    dispatcher.submit(note())  # same decision again: suppressed
    dispatcher.submit(note(version="3"))  # another version: a new message
    clock[0] += 61
    dispatcher.submit(note())  # window passed
    assert sample(registry, "tryon_notifications_deduplicated_total") == 1
    # not started: nothing is queued, each attempt is counted as dropped
    assert sample(registry, "tryon_notifications_dropped_total",
                  target="slack", reason="not_running") == 3


def test_target_selection_and_unique_names():
    registry = CollectorRegistry()
    dispatcher = Dispatcher(
        [Target("slack", "slack", "http://a"), Target("webhook", "json", "http://b")],
        metrics=NotifyMetrics(registry),
    )
    dispatcher.submit(note(targets=frozenset({"webhook"})))
    dispatcher.submit(note(version="9", targets=frozenset({"nowhere"})))
    assert sample(registry, "tryon_notifications_dropped_total",
                  target="webhook", reason="not_running") == 1
    assert sample(registry, "tryon_notifications_dropped_total",
                  target="slack", reason="not_running") == 0
    with pytest.raises(ValueError, match="unique"):
        Dispatcher([Target("a", "slack", "http://a"), Target("a", "json", "http://b")])
