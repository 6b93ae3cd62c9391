"""What the operator tells people about a rollout, independent of where it is sent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from ...api.builders import Owner
from ...api.vocabulary import NotificationKind
from ..told import Told

Severity = Literal["info", "success", "warning", "error"]

_SEVERITY: dict[NotificationKind, Severity] = {
    "rollout_started": "info",
    "promoted": "success",
    "rejected": "warning",
    "rolled_back": "error",
    "degraded": "error",
    "recovered": "success",
}

TITLES: dict[NotificationKind, str] = {
    "rollout_started": "Rollout started",
    "promoted": "Promoted",
    "rejected": "Rejected",
    "rolled_back": "Rolled back",
    "degraded": "Degraded",
    "recovered": "Recovered",
}


@dataclass(frozen=True)
class Notification:
    """A decision worth telling people about (``told``, its TryOnModel filled in), as which kind,
    and to whom."""

    told: Told
    kind: NotificationKind
    targets: frozenset[str] | None = None  # None: every configured target
    channel: str | None = None  # Slack channel override, where the receiver honours one
    # The decision's key within its rollout (``Step.tell``): a leader that sends it again after a
    # failover sends the same ``id``.
    decision_key: str | None = None

    @property
    def owner(self) -> Owner:
        return self.told.about

    @property
    def reason(self) -> str:
        """The Event reason, left out for a promotion, whose kind already says it all."""
        return "" if self.kind == "promoted" else self.told.reason

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self.kind]

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def object_ref(self) -> str:
        return f"{self.owner.namespace}/{self.owner.name}"

    def dedup_key(self) -> tuple[str, ...]:
        """Equal keys within the dedup window are one message (the time is left out)."""
        return (
            self.owner.namespace,
            self.owner.name,
            self.kind,
            self.told.version or "",
            self.told.previous_version or "",
            self.reason,
        )

    @property
    def id(self) -> str:
        """Stable for one decision (idempotency key for receivers): delivery is at least once,
        and every copy of a keyed decision, from whichever leader, has the same id."""
        if self.decision_key is not None:
            raw = f"{self.owner.uid}/{self.decision_key}"
        else:
            raw = "\x1f".join((*self.dedup_key(), self.told.at.isoformat()))
        return hashlib.sha256(raw.encode()).hexdigest()[:20]
