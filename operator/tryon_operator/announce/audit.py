"""The audit trail: one JSON line per decision the operator takes.

A line is made from a ``Told`` record: the TryOnModel, the decision (an ``AuditVerb``, see
api/vocabulary.py), the versions and colours involved, a reason, a human message and the evidence
the decision rested on. ``AuditLog`` writes it on the ``tryon_operator.audit`` logger, whose
handler (``configure_audit_logging``) prints the bare JSON so a log pipeline can parse each line
without a prefix.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from .told import Told

AUDIT_LOGGER = "tryon_operator.audit"  # a name log pipelines filter on: kept across moves
SCHEMA = "tryon.dev/audit/v1"


def audit_line(told: Told) -> str:
    """One line (``json.dumps`` without indent never emits a newline) for a decision whose
    TryOnModel the announcer has filled in."""
    owner = told.about
    record = {
        "audit": SCHEMA,
        "ts": told.at.isoformat(),
        "decision": told.audit_verb,
        "tryOnModel": f"{owner.namespace}/{owner.name}",
        "uid": owner.uid,
        "registeredModel": told.registered_model,
        "version": told.version,
        "previousVersion": told.previous_version,
        "color": told.color,
        "previousColor": told.previous_color,
        "reason": told.reason,
        "eventType": told.type,
        "message": told.message,
        "evidence": dict(told.evidence),
    }
    return json.dumps(record, ensure_ascii=False, default=str, separators=(",", ":"))


class AuditLog:
    """Writes audit records as JSON lines on the audit logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def record(self, told: Told) -> None:
        self._log.info("%s", audit_line(told))


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
