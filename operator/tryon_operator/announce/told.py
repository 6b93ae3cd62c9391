"""Every decision the operator takes becomes one ``Told`` record, and the Kubernetes Event, the
audit line (audit.py) and the notification (notify/message.py) are all made from it, so the three
cannot disagree and a new field is added in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..api.builders import Owner
from ..api.vocabulary import (
    ANNOUNCED_AS,
    KIND_BY_VERB,
    AuditVerb,
    EventReason,
    EventType,
    NotificationKind,
)

# A reason outside the vocabulary (mypy rejects one; a test may pass a free string) is audited
# as "other" and notifies nobody.
_UNLISTED: tuple[AuditVerb, NotificationKind | None] = ("other", None)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Told:
    """One decision as people and machines hear about it.

    The reconcile says what was decided; the announcer fills in which TryOnModel it is about
    (``owner``) and its registered model before the audit line and notification are made.
    """

    type: EventType
    reason: EventReason
    message: str
    decision: AuditVerb | None = None  # None: the reason's verb (vocabulary.ANNOUNCED_AS)
    version: str | None = None
    color: str | None = None
    previous_version: str | None = None
    previous_color: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    owner: Owner | None = None
    registered_model: str | None = None
    # When it was decided. Not compared: the same decision told again is the same decision.
    at: datetime = field(default_factory=_now, compare=False)

    @property
    def about(self) -> Owner:
        """The TryOnModel this decision is about; an audit line or a notification needs one."""
        if self.owner is None:
            raise ValueError(f"{self.reason} was told about no TryOnModel")
        return self.owner

    @property
    def audit_verb(self) -> AuditVerb:
        return self.decision or ANNOUNCED_AS.get(self.reason, _UNLISTED)[0]

    @property
    def notification_kind(self) -> NotificationKind | None:
        """Which notification this decision makes, before any per-object choice; None: none."""
        kind = ANNOUNCED_AS.get(self.reason, _UNLISTED)[1]
        return None if kind is None else KIND_BY_VERB.get(self.audit_verb, kind)
