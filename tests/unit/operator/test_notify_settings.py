"""Notification targets and policy from TRYON_NOTIFY_* settings; secrets stay secret."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from tryon_operator.announce.announcer import (
    policy_from_settings,
    start_announcer,
    targets_from_settings,
)
from tryon_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

SLACK = "https://hooks.slack.com/services/T0/B0/sEcReT"


def test_targets_come_only_from_set_urls_and_carry_the_token():
    settings = OperatorSettings.from_env({
        "TRYON_NOTIFY_SLACK_URL": SLACK,
        "TRYON_NOTIFY_WEBHOOK_URL": " https://bridge.example/hook ",
        "TRYON_NOTIFY_WEBHOOK_TOKEN": "tok",
    })
    slack, hook = targets_from_settings(settings)
    assert (slack.name, slack.kind, slack.url) == ("slack", "slack", SLACK)
    assert (hook.name, hook.kind, hook.url) == ("webhook", "json", "https://bridge.example/hook")
    assert dict(hook.headers) == {"Authorization": "Bearer tok"}
    assert "sEcReT" not in repr(settings) and "tok'" not in repr(settings)
    assert targets_from_settings(OperatorSettings.from_env({"TRYON_NOTIFY_SLACK_URL": " "})) == []


def test_policy_follows_the_settings():
    policy = policy_from_settings(OperatorSettings.from_env({
        "TRYON_NOTIFY_QUEUE_SIZE": "7", "TRYON_NOTIFY_MAX_ATTEMPTS": "2",
        "TRYON_NOTIFY_BACKOFF_SECONDS": "0.5", "TRYON_NOTIFY_DEDUP_SECONDS": "0",
        "TRYON_NOTIFY_BREAKER_THRESHOLD": "3", "TRYON_NOTIFY_BREAKER_COOLDOWN_SECONDS": "9",
    }))
    assert (policy.queue_size, policy.max_attempts, policy.backoff_base_seconds,
            policy.dedup_seconds, policy.breaker_threshold, policy.breaker_cooldown_seconds) == \
        (7, 2, 0.5, 0.0, 3, 9.0)


async def test_without_targets_only_the_audit_log_runs():
    announcer, dispatcher = await start_announcer(
        OperatorSettings(notify_events="promoted, rejected"), CollectorRegistry(),
        lambda *a: None)
    assert dispatcher is None and announcer.notifier is None
    assert announcer.kinds == frozenset({"promoted", "rejected"})


async def test_with_a_target_the_dispatcher_runs_and_stops():
    registry = CollectorRegistry()
    announcer, dispatcher = await start_announcer(
        OperatorSettings.from_env({"TRYON_NOTIFY_SLACK_URL": SLACK}), registry, lambda *a: None)
    assert dispatcher is not None and announcer.notifier is dispatcher
    assert registry.get_sample_value("tryon_notification_circuit_open", {"target": "slack"}) == 0
    await dispatcher.stop(drain_seconds=0)
