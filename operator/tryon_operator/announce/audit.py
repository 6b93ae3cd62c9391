"""The audit trail: one JSON line per decision the operator takes.

A record names the TryOnModel, the decision (resolve, scale, smoke, flip, reject, rollback,
complete, cancel, await, heal, degrade, recover), the versions and colours involved, a reason, a
human message and the evidence the decision rested on. ``AuditLog`` writes it on the
``tryon_operator.audit`` logger, whose handler (``configure_audit_logging``) prints the bare JSON
so a log pipeline can parse each line without a prefix.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

AUDIT_LOGGER = "tryon_operator.audit"  # a name log pipelines filter on: kept across moves
SCHEMA = "tryon.dev/audit/v1"

Decision = Literal[
    "resolve",
    "scale",
    "smoke",
    "flip",
    "reject",
    "rollback",
    "complete",
    "cancel",
    "await",
    "heal",
    "degrade",
    "recover",
    "other",
]

# Event reason -> decision, for call sites that do not say it themselves.
DECISION_BY_REASON: dict[str, Decision] = {
    "ModelResolved": "resolve",
    "ModelResolutionFailed": "resolve",
    "ModelResolutionRecovered": "resolve",
    "RolloutStarted": "scale",
    "ScaledDown": "scale",
    "Rescaled": "scale",
    "PreviewShrunk": "scale",
    "PreviewGrowing": "scale",
    "StandbyShrunk": "scale",
    "MadeRoomForPreview": "scale",
    "SmokeTestPassed": "smoke",
    "Promoted": "flip",
    "RolledBack": "reject",
    "RolloutComplete": "complete",
    "RolloutCancelled": "cancel",
    "AwaitingPromotion": "await",
    "SelfHealed": "heal",
    "Degraded": "degrade",
    "Recovered": "recover",
}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AuditRecord:
    decision: Decision
    namespace: str
    name: str
    reason: str
    message: str
    event_type: str = "Normal"
    uid: str | None = None
    registered_model: str | None = None
    version: str | None = None
    previous_version: str | None = None
    color: str | None = None
    previous_color: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=_now)

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit": SCHEMA,
            "ts": self.at.isoformat(),
            "decision": self.decision,
            "tryOnModel": f"{self.namespace}/{self.name}",
            "uid": self.uid,
            "registeredModel": self.registered_model,
            "version": self.version,
            "previousVersion": self.previous_version,
            "color": self.color,
            "previousColor": self.previous_color,
            "reason": self.reason,
            "eventType": self.event_type,
            "message": self.message,
            "evidence": dict(self.evidence),
        }

    def to_json(self) -> str:
        """One line: ``json.dumps`` without indent never emits a newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str, separators=(",", ":"))


class AuditLog:
    """Writes audit records as JSON lines on the audit logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def record(self, record: AuditRecord) -> None:
        self._log.info("%s", record.to_json())


class _JsonLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker class so configuring twice does not add a second handler."""


def configure_audit_logging(stream: TextIO | None = None) -> logging.Handler:
    """Bare JSON lines on ``stream`` (stderr by default), not repeated through the root logger."""
    logger = logging.getLogger(AUDIT_LOGGER)
    for existing in logger.handlers:
        if isinstance(existing, _JsonLineHandler):
            return existing
    handler = _JsonLineHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def parse_audit_line(line: str) -> dict[str, Any] | None:
    """The record in one log line, or None when the line is not an audit record."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("audit") != SCHEMA:
        return None
    return data
