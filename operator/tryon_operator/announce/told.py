"""Every decision the operator takes becomes one ``Told`` record: the Kubernetes Event, the audit
line and the notification are all made from it (reconcile/events.py, announce.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.vocabulary import EventReason, EventType
from .audit import Decision


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
