"""What delivery is made of: targets, the retry policy, the circuit breaker, the metrics, and
the log filter that keeps webhook URLs (credentials) out of logs. ``dispatcher.py`` runs them."""

from __future__ import annotations

import email.utils
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from .formatters import generic_payload, slack_payload
from .message import Notification

TargetKind = Literal["slack", "json"]


@dataclass(frozen=True)
class Target:
    """A named receiver. The URL is excluded from repr and never appears in a log line."""

    name: str
    kind: TargetKind
    url: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def body(self, n: Notification) -> bytes:
        payload = slack_payload(n) if self.kind == "slack" else generic_payload(n)
        return json.dumps(payload, ensure_ascii=False).encode()


@dataclass(frozen=True)
class DeliveryPolicy:
    queue_size: int = 100
    max_attempts: int = 5
    timeout_seconds: float = 5.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    retry_after_max_seconds: float = 300.0
    dedup_seconds: float = 300.0
    max_age_seconds: float = 3600.0
    breaker_threshold: int = 5
    breaker_cooldown_seconds: float = 30.0
    breaker_cooldown_max_seconds: float = 600.0


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sent = Counter(
            "tryon_notifications_sent_total",
            "Notifications a receiver accepted.",
            ["target"],
            registry=self.registry,
        )
        self.failed = Counter(
            "tryon_notifications_failed_total",
            "Notifications given up on after retries, by the last error.",
            ["target", "reason"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "tryon_notifications_dropped_total",
            "Notifications never attempted: queue full, too old, or the dispatcher stopped.",
            ["target", "reason"],
            registry=self.registry,
        )
        self.deduplicated = Counter(
            "tryon_notifications_deduplicated_total",
            "Notifications suppressed because the same one was sent within the dedup window.",
            registry=self.registry,
        )
        self.attempts = Counter(
            "tryon_notification_attempts_total",
            "HTTP deliveries tried, by result (ok or the error).",
            ["target", "result"],
            registry=self.registry,
        )
        self.circuit_open = Gauge(
            "tryon_notification_circuit_open",
            "1 while a target's circuit breaker keeps requests away from it.",
            ["target"],
            registry=self.registry,
        )


@dataclass
class Breaker:
    threshold: int
    base_cooldown: float
    max_cooldown: float
    failures: int = 0
    cooldown: float = 0.0
    open_until: float = 0.0

    def success(self) -> None:
        self.failures = 0
        self.cooldown = 0.0
        self.open_until = 0.0

    def failure(self, now: float) -> bool:
        """Counts a failed attempt; True when this opens (or re-opens) the circuit."""
        self.failures += 1
        if self.failures < self.threshold:
            return False
        self.cooldown = (
            self.base_cooldown if self.cooldown == 0 else min(self.cooldown * 2, self.max_cooldown)
        )
        self.open_until = now + self.cooldown
        return True


class HideSecrets(logging.Filter):
    """Drops any record of the HTTP library that would show a webhook URL."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is not ours to judge
            return True
        return not any(s in text for s in self._secrets)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
