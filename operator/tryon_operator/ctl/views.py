"""Pure formatting for ``tryonctl``: what a person reads, built from the TryOnModel as the API
server returns it (a dict), the colours' pod counts and the object's Events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.models import ConditionType, TryOnModelStatus, parse_status
from ..api.vocabulary import REQUEST_ANNOTATIONS

EXIT_HEALTHY = 0
EXIT_DEGRADED = 1  # also any error
EXIT_PROGRESSING = 2  # not finished (or waiting for a person) when the watch ended


@dataclass(frozen=True)
class EventLine:
    at: datetime | None
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Pods:
    ready: int
    replicas: int


def age(then: datetime | None, now: datetime) -> str:
    """kubectl-style age: 42s, 7m, 5h, 3d."""
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _created(body: Mapping[str, Any]) -> datetime | None:
    raw = (body.get("metadata") or {}).get("creationTimestamp")
    if isinstance(raw, datetime):
        return raw
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


def is_current(body: Mapping[str, Any]) -> bool:
    """Status describes the spec as it is now (the operator has seen the last change)."""
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    return status.get("observedGeneration") == generation


def waiting_for(body: Mapping[str, Any]) -> str | None:
    """What a person must do before anything moves on, if anything."""
    spec = body.get("spec") or {}
    status = parse_status(body.get("status"))
    name = (body.get("metadata") or {}).get("name", "NAME")
    if spec.get("paused"):
        return f"paused: resume with `tryonctl resume {name}`"
    if status.rollout is not None and status.rollout.phase == "AwaitingPromotion":
        return (
            f"version {status.rollout.version} awaits promotion: "
            f"`tryonctl promote {name}` or `tryonctl rollback {name}`"
        )
    return None


def exit_code(body: Mapping[str, Any]) -> int | None:
    """0 Healthy, 1 Degraded, None while it may still change on its own."""
    if not is_current(body):
        return None
    phase = parse_status(body.get("status")).phase
    if phase == "Healthy":
        return EXIT_HEALTHY
    if phase == "Degraded":
        return EXIT_DEGRADED
    return None


def render_status(
    body: Mapping[str, Any],
    pods: Mapping[str, Pods],
    events: Sequence[EventLine],
    now: datetime,
) -> str:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = parse_status(body.get("status"))
    lines = [f"Name:        {meta.get('namespace')}/{meta.get('name')}"]
    phase = status.phase if is_current(body) else f"{status.phase} (spec change not seen yet)"
    lines.append(f"Status:      {phase}")
    message = _phase_message(status)
    if message:
        lines.append(f"Message:     {message}")
    lines.append(f"Model:       {_model_line(spec, status)}")
    lines.append(f"Active:      {_colour_line(status.active_color, status.active_version, pods)}")
    rollout = status.rollout
    if rollout is not None and rollout.phase != "PostPromotion":
        lines.append(f"Preview:     {_colour_line(rollout.color, rollout.version, pods)}")
    else:
        lines.append("Preview:     -")
    if rollout is not None:
        smoke = ", smoke test passed" if rollout.smoke_passed else ""
        since = rollout.promoted_at if rollout.phase == "PostPromotion" else rollout.started_at
        extra = ""
        if rollout.phase == "PostPromotion" and rollout.previous_color:
            extra = (
                f", previous {rollout.previous_color} (version {rollout.previous_version}) "
                "kept warm"
            )
        lines.append(
            f"Rollout:     {rollout.phase}, version {rollout.version} on {rollout.color}, "
            f"{age(since, now)}{smoke}{extra}"
        )
    else:
        lines.append("Rollout:     -")
    rejected = list(status.rejected_versions)
    if status.rejected_template_hash and status.active_version:
        rejected.append(f"pod template {status.rejected_template_hash} of {status.active_version}")
    lines.append(f"Rejected:    {', '.join(rejected) or '-'}")
    if status.pending_registry_tags:
        owed = ", ".join(f"{t.key} on {t.version}" for t in status.pending_registry_tags)
        lines.append(f"MLflow tags: {owed} (not sent yet: MLflow was unreachable)")
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    pending = [f"{k}={annotations[k]}" for k in REQUEST_ANNOTATIONS if k in annotations]
    if pending:
        lines.append(f"Requests:    {', '.join(pending)} (not yet acted on)")
    hint = waiting_for(body)
    if hint:
        lines.append(f"Waiting:     {hint}")
    if status.conditions:
        lines.append("Conditions:")
        rows: list[tuple[str, ...]] = [("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")]
        rows += [
            (c.type, c.status, c.reason, age(c.last_transition_time, now), c.message)
            for c in status.conditions
        ]
        lines += ["  " + line for line in _table(rows)]
    if events:
        lines.append("Events:")
        rows = [("AGE", "TYPE", "REASON", "MESSAGE")]
        rows += [(age(e.at, now), e.type, e.reason, e.message) for e in events]
        lines += ["  " + line for line in _table(rows)]
    return "\n".join(lines)


def _phase_message(status: TryOnModelStatus) -> str:
    """The one condition that explains the phase."""
    order: dict[str, tuple[ConditionType, ...]] = {
        "Degraded": ("Degraded", "Progressing"),
        "Progressing": ("Progressing",),
        "Pending": ("ModelResolved", "Ready"),
    }
    for type_ in order.get(status.phase, ()):
        cond = status.condition(type_)
        wanted = "False" if type_ in ("ModelResolved", "Ready") else "True"
        if cond is not None and cond.status == wanted:
            return f"{cond.reason}: {cond.message}" if cond.message else cond.reason
    return ""


def _model_line(spec: Mapping[str, Any], status: TryOnModelStatus) -> str:
    model = spec.get("model") or {}
    if model.get("version"):
        selector = f"version {model['version']}"
    elif model.get("stage"):
        selector = f"stage {model['stage']}"
    else:
        selector = f"alias {model.get('alias') or 'production'}"
    resolved = (
        f"version {status.model.version}"
        if status.model is not None and status.model.selector == selector
        else "(not resolved)"
    )
    return f"{model.get('registeredModel', '?')} {selector} -> {resolved}"


def _colour_line(color: str | None, version: str | None, pods: Mapping[str, Pods]) -> str:
    if color is None:
        return "-"
    count = pods.get(color)
    ready = f", {count.ready}/{count.replicas} pods Ready" if count is not None else ""
    return f"{color}, version {version or '-'}{ready}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        ("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip()
        for r in rows
    ]


def render_list(items: Sequence[Mapping[str, Any]], now: datetime, *, namespaces: bool) -> str:
    """One line per TryOnModel, like ``kubectl get``."""
    head = ("NAME", "PHASE", "ACTIVE", "VERSION", "PREVIEW", "ROLLOUT", "MODEL", "REJECTED", "AGE")
    rows: list[tuple[str, ...]] = [(("NAMESPACE",) if namespaces else ()) + head]
    for body in sorted(
        items, key=lambda b: (b["metadata"].get("namespace", ""), b["metadata"]["name"])
    ):
        meta = body["metadata"]
        status = parse_status(body.get("status"))
        rollout = status.rollout
        row = (
            meta["name"],
            status.phase,
            status.active_color or "-",
            status.active_version or "-",
            f"{rollout.color}/{rollout.version}"
            if rollout is not None and rollout.phase != "PostPromotion"
            else "-",
            rollout.phase if rollout is not None else "-",
            status.model.version if status.model is not None else "-",
            ",".join(status.rejected_versions) or "-",
            age(_created(body), now),
        )
        rows.append(((meta.get("namespace", ""),) if namespaces else ()) + row)
    return "\n".join(_table([(*r, "") for r in rows]))


def summary(body: Mapping[str, Any]) -> str:
    """One line per state, like ``kubectl argo rollouts status``: ``Phase - why``."""
    status = parse_status(body.get("status"))
    if not is_current(body):
        return f"{status.phase} - waiting for the operator to see the latest spec"
    if status.phase == "Healthy":
        return f"Healthy - version {status.active_version} serves on {status.active_color}"
    message = _phase_message(status)
    return f"{status.phase} - {message}" if message else status.phase
