"""Where the reconciler's decisions go besides an Event: the audit log and the notifiers.

Every decision passes through ``EventSink.tell`` (reconcile/events.py), which posts its Event and
hands the same ``Told`` to ``Announcer.decision``: that writes the audit line and, for the
decisions people want to hear about, queues a notification. Per-object choices come from
annotations on the TryOnModel (the webhook URLs themselves never do: they are operator-wide
settings read from a Secret):

- ``tryon.dev/notify: "false"`` silences this TryOnModel; ``"slack"`` / ``"webhook"`` /
  ``"slack,webhook"`` picks which configured targets hear about it.
- ``tryon.dev/notify-events: "rejected,rolled_back"`` narrows the kinds it is notified for.
- ``tryon.dev/notify-slack-channel: "#shop-dress"`` asks the Slack-compatible receiver for a
  channel (honoured by Mattermost, Rocket.Chat and legacy Slack webhooks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from ..api.builders import Owner
from ..api.vocabulary import (
    ANNOTATION_NOTIFY,
    ANNOTATION_NOTIFY_EVENTS,
    ANNOTATION_SLACK_CHANNEL,
    NOTIFICATION_KINDS,
    NotificationKind,
)
from ..settings import OperatorSettings
from .audit import AuditLog
from .notify.delivery import DeliveryPolicy, NotifyMetrics, Target
from .notify.dispatcher import Dispatcher
from .notify.message import Notification
from .told import Told

log = logging.getLogger(__name__)


_OFF = {"false", "off", "no", "none", "0", "disabled"}
_ON = {"", "true", "on", "yes", "all", "1", "enabled"}


class Notifier(Protocol):
    def submit(self, n: Notification, on_done: Callable[[], None] | None = None) -> None: ...


def parse_kinds(raw: str) -> frozenset[NotificationKind]:
    """``"promoted, rejected"`` -> the kinds; unknown words are ignored with a warning."""
    chosen: set[NotificationKind] = set()
    for word in (w.strip().lower().replace("-", "_") for w in raw.split(",")):
        if not word:
            continue
        match = next((k for k in NOTIFICATION_KINDS if k == word), None)
        if match is None:
            log.warning("unknown notification kind %r ignored", word)
        else:
            chosen.add(match)
    return frozenset(chosen)


@dataclass(frozen=True)
class NotifyOptions:
    enabled: bool = True
    targets: frozenset[str] | None = None
    kinds: frozenset[NotificationKind] | None = None
    channel: str | None = None


def options_from_annotations(annotations: Mapping[str, str] | None) -> NotifyOptions:
    annotations = annotations or {}
    raw = annotations.get(ANNOTATION_NOTIFY, "").strip().lower()
    enabled = raw not in _OFF
    targets = None
    if enabled and raw not in _ON:
        targets = frozenset(t.strip() for t in raw.split(",") if t.strip())
    kinds_raw = annotations.get(ANNOTATION_NOTIFY_EVENTS)
    kinds = parse_kinds(kinds_raw) if kinds_raw else None
    channel = (annotations.get(ANNOTATION_SLACK_CHANNEL) or "").strip() or None
    return NotifyOptions(enabled, targets, kinds, channel)


@dataclass(frozen=True)
class _Known:
    options: NotifyOptions
    registered_model: str | None


class Announcer:
    """Audit line for every decision; a notification for the ones people want to hear about."""

    def __init__(
        self,
        audit: AuditLog | None = None,
        notifier: Notifier | None = None,
        *,
        kinds: frozenset[NotificationKind] | None = None,
    ) -> None:
        self.audit = audit or AuditLog()
        self.notifier = notifier
        self.kinds = frozenset(NOTIFICATION_KINDS) if kinds is None else kinds
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()

    def observe(
        self, owner: Owner, annotations: Mapping[str, str] | None, registered_model: str | None
    ) -> None:
        """Remembers the object's notification choices and model name for its decisions."""
        known = _Known(options_from_annotations(annotations), registered_model)
        with self._lock:
            self._known[owner.uid] = known

    def decision(
        self,
        owner: Owner,
        told: Told,
        on_notified: Callable[[], None] | None = None,
        key: str | None = None,
    ) -> None:
        """The audit line, then the notification if one is wanted (``on_notified`` runs once it
        is sent or given up). Never raises: they must not break a reconcile."""
        self._tell(owner, told, on_notified, key, audit=True)

    def renotify(
        self,
        owner: Owner,
        told: Told,
        on_notified: Callable[[], None] | None = None,
        key: str | None = None,
    ) -> None:
        """The notification alone, for a decision told before whose sending nobody confirmed
        (the replica that told it stopped first); its audit line was written then."""
        self._tell(owner, told, on_notified, key, audit=False)

    def wants_notification(self, owner: Owner, told: Told) -> bool:
        """Whether ``told`` makes a notification for this object with the targets configured."""
        try:
            told, options = self._complete(owner, told)
        except Exception:
            log.exception("could not tell whether %s is notified", told.reason)
            return False
        return self._kind(told, options) is not None

    def _tell(
        self,
        owner: Owner,
        told: Told,
        on_notified: Callable[[], None] | None,
        key: str | None,
        *,
        audit: bool,
    ) -> None:
        try:
            told, options = self._complete(owner, told)
            if audit:
                self.audit.record(told)
            self._notify(told, options, on_notified, key)
        except Exception:
            log.exception("audit/notification of %s failed", told.reason)

    def _complete(self, owner: Owner, told: Told) -> tuple[Told, NotifyOptions]:
        """``told`` with what the reconcile leaves out: the object, its model, bounded evidence."""
        with self._lock:
            known = self._known.get(owner.uid) or _Known(NotifyOptions(), None)
        told = replace(
            told,
            owner=owner,
            registered_model=known.registered_model,
            evidence=_clean(told.evidence),
        )
        return told, known.options

    def _kind(self, told: Told, options: NotifyOptions) -> NotificationKind | None:
        if self.notifier is None or not options.enabled:
            return None
        kind = told.notification_kind
        if kind is None or kind not in self.kinds:
            return None
        if options.kinds is not None and kind not in options.kinds:
            return None
        return kind

    def _notify(
        self,
        told: Told,
        options: NotifyOptions,
        on_notified: Callable[[], None] | None,
        key: str | None = None,
    ) -> None:
        kind = self._kind(told, options)
        if kind is None or self.notifier is None:
            return
        self.notifier.submit(
            Notification(told, kind, options.targets, options.channel, decision_key=key),
            on_notified,
        )


def _clean(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence as JSON-friendly scalars, each value bounded (it ends up in Slack and logs)."""
    out: dict[str, Any] = {}
    for key, value in evidence.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)[:500]
    return out


# ---------------------------------------------------------------------- setup from settings

EventPoster = Callable[[Owner, str, str, str], object]


def targets_from_settings(settings: OperatorSettings) -> list[Target]:
    """The operator-wide targets: ``slack`` and ``webhook``, each only when its URL is set."""
    targets: list[Target] = []
    if settings.notify_slack_url and settings.notify_slack_url.get_secret_value().strip():
        targets.append(
            Target("slack", "slack", settings.notify_slack_url.get_secret_value().strip())
        )
    if settings.notify_webhook_url and settings.notify_webhook_url.get_secret_value().strip():
        token = settings.notify_webhook_token
        headers = (
            (("Authorization", f"Bearer {token.get_secret_value()}"),)
            if token and token.get_secret_value()
            else ()
        )
        targets.append(
            Target(
                "webhook",
                "json",
                settings.notify_webhook_url.get_secret_value().strip(),
                headers=headers,
            )
        )
    return targets


def policy_from_settings(settings: OperatorSettings) -> DeliveryPolicy:
    return DeliveryPolicy(
        queue_size=settings.notify_queue_size,
        max_attempts=settings.notify_max_attempts,
        timeout_seconds=settings.notify_timeout_seconds,
        backoff_base_seconds=settings.notify_backoff_seconds,
        backoff_max_seconds=max(60.0, settings.notify_backoff_seconds),
        dedup_seconds=settings.notify_dedup_seconds,
        breaker_threshold=settings.notify_breaker_threshold,
        breaker_cooldown_seconds=settings.notify_breaker_cooldown_seconds,
    )


async def start_announcer(
    settings: OperatorSettings, registry: CollectorRegistry, post_event: EventPoster
) -> tuple[Announcer, Dispatcher | None]:
    """The announcer for the running operator; a started dispatcher when a target is set.

    A message given up on is counted in ``tryon_notifications_failed_total`` and reported as a
    ``NotificationFailed`` Warning Event on its TryOnModel (never through the announcer, so a
    failing webhook cannot cause more notifications).
    """
    kinds = parse_kinds(settings.notify_events) if settings.notify_events.strip() else None
    targets = targets_from_settings(settings)
    if not targets:
        log.info("notifications: no target configured (TRYON_NOTIFY_SLACK_URL / _WEBHOOK_URL)")
        return Announcer(kinds=kinds), None

    def report(n: Notification, target: str, reason: str) -> None:
        post_event(
            n.owner,
            "Warning",
            "NotificationFailed",
            f"{n.kind} notification (version {n.told.version or '-'}) could not be delivered to "
            f"target {target}: {reason}",
        )

    dispatcher = Dispatcher(
        targets,
        policy_from_settings(settings),
        metrics=NotifyMetrics(registry),
        on_failure=report,
    )
    await dispatcher.start()
    log.info("notifications: targets %s", ", ".join(t.name for t in targets))
    return Announcer(notifier=dispatcher, kinds=kinds), dispatcher
