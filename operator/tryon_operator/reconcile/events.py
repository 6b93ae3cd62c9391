"""Every decision the reconciler takes becomes one ``Told`` record: the Kubernetes Event, the
audit line and the notification are all made from it, so they cannot disagree."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..announce import Announcer
from ..audit import Decision
from ..builders import Owner
from ..vocabulary import EventReason, EventType
from .ports import KubePort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Told:
    """One decision as people and machines hear about it."""

    type: EventType
    reason: EventReason
    message: str
    decision: Decision | None = None  # None: derived from the reason (audit.DECISION_BY_REASON)
    version: str | None = None
    color: str | None = None
    previous_version: str | None = None
    previous_color: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)


class EventSink:
    """Posts the Event and hands the same record to the audit log and the notifiers."""

    def __init__(self, kube: KubePort, announcer: Announcer) -> None:
        self.kube = kube
        self.announcer = announcer

    def tell(self, owner: Owner, told: Told) -> None:
        log.info("%s/%s %s: %s", owner.namespace, owner.name, told.reason, told.message)
        try:
            self.kube.emit_event(owner, told.type, told.reason, told.message)
        except Exception as err:  # an Event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", told.reason, err)
        self.announcer.decision(
            owner,
            told.type,
            told.reason,
            told.message,
            decision=told.decision,
            version=told.version,
            previous_version=told.previous_version,
            color=told.color,
            previous_color=told.previous_color,
            evidence=told.evidence or None,
        )
