"""What the operator tells people about a rollout, independent of where it is sent."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["rollout_started", "promoted", "rejected", "rolled_back", "degraded", "recovered"]
KINDS: tuple[Kind, ...] = (
    "rollout_started",
    "promoted",
    "rejected",
    "rolled_back",
    "degraded",
    "recovered",
)
Severity = Literal["info", "success", "warning", "error"]

_SEVERITY: dict[Kind, Severity] = {
    "rollout_started": "info",
    "promoted": "success",
    "rejected": "warning",
    "rolled_back": "error",
    "degraded": "error",
    "recovered": "success",
}

TITLES: dict[Kind, str] = {
    "rollout_started": "Rollout started",
    "promoted": "Promoted",
    "rejected": "Rejected",
    "rolled_back": "Rolled back",
    "degraded": "Degraded",
    "recovered": "Recovered",
}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Notification:
    """One thing worth telling: a rollout of ``version`` of a TryOnModel changed state."""

    kind: Kind
    namespace: str
    name: str
    summary: str
    reason: str = ""
    uid: str | None = None
    registered_model: str | None = None
    version: str | None = None
    previous_version: str | None = None
    color: str | None = None
    previous_color: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=_now)
    targets: frozenset[str] | None = None  # None: every configured target
    channel: str | None = None  # Slack channel override, where the receiver honours one
    # The decision's key within its rollout (``Step.tell``): a leader that sends it again after a
    # failover sends the same ``id``.
    decision_key: str | None = None

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self.kind]

    @property
    def title(self) -> str:
        return TITLES[self.kind]

    @property
    def object_ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def dedup_key(self) -> tuple[str, ...]:
        """Equal keys within the dedup window are one message (the time is left out)."""
        return (
            self.namespace,
            self.name,
            self.kind,
            self.version or "",
            self.previous_version or "",
            self.reason,
        )

    @property
    def id(self) -> str:
        """Stable for one decision (idempotency key for receivers): delivery is at least once,
        and every copy of a keyed decision, from whichever leader, has the same id."""
        if self.decision_key is not None:
            raw = f"{self.uid}/{self.decision_key}"
        else:
            raw = "\x1f".join((*self.dedup_key(), self.occurred_at.isoformat()))
        return hashlib.sha256(raw.encode()).hexdigest()[:20]
