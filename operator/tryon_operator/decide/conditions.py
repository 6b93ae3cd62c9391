"""Pure helpers that derive conditions and phase from status and what the cluster shows."""

from __future__ import annotations

from datetime import datetime

from ..api.models import Condition, ConditionType, Phase, TryOnModelStatus
from .decision import Observed


def set_condition(  # noqa: PLR0913 - one condition's fields
    conditions: tuple[Condition, ...],
    type_: ConditionType,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> tuple[Condition, ...]:
    """Returns conditions with one replaced; lastTransitionTime moves only when status changes."""
    value = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    transition = old.last_transition_time if old is not None and old.status == value else now
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    rest = tuple(c for c in conditions if c.type != type_)
    order = {"Ready": 0, "Progressing": 1, "Degraded": 2, "ModelResolved": 3}
    return tuple(sorted((*rest, new), key=lambda c: order[c.type]))


def degraded_reason(
    status: TryOnModelStatus, desired_version: str | None, desired_hash: str, observed: Observed
) -> tuple[str, str] | None:
    """Why the TryOnModel is Degraded, or None when it is not."""
    if status.active_color is not None:
        active = observed.color(status.active_color)
        if active.crashlooping_pods:
            return (
                "ActiveCrashLooping",
                f"{active.crashlooping_pods} pod(s) of the active colour {status.active_color} "
                "are crash-looping",
            )
        if active.image_unavailable_pods:  # e.g. a node lost the image and pull policy is Never
            return (
                "ActiveImageUnavailable",
                f"{active.image_unavailable_pods} pod(s) of the active colour "
                f"{status.active_color} cannot start: {active.image_unavailable_message}",
            )
    if desired_version is None:
        return None
    if status.is_rejected(desired_version, desired_hash):
        last = next(
            (
                h
                for h in reversed(status.history)
                if h.version == desired_version and h.outcome == "RolledBack"
            ),
            None,
        )
        reason = last.reason if last else "VersionRejected"
        what = (
            "pod template"
            if desired_version == status.active_version
            else f"version {desired_version}"
        )
        detail = f": {last.message}" if last and last.message else ""
        return (reason, f"{what} was rolled back and is not retried{detail}")
    return None


def derive_phase(status: TryOnModelStatus, paused: bool) -> Phase:
    if paused:
        return "Paused"
    degraded = status.condition("Degraded")
    if degraded is not None and degraded.status == "True":
        return "Degraded"
    if status.rollout is not None:
        return "Progressing"
    ready = status.condition("Ready")
    if ready is not None and ready.status == "True":
        return "Healthy"
    return "Pending"
