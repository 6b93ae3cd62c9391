"""Status as the cluster shows it: the four conditions and the phase, worked out without I/O so
the table tests can pin every case."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from ..api.models import Condition, ConditionType, Phase, TryOnModelStatus
from ..decide import decision as d
from ..gateways.mlflow import ResolvedModel
from ..observe.views import ClusterView, Observed
from ..registry.cache import Answer
from .context import Facts
from .problems import image_problem, refusal

Wanted = tuple[ConditionType, bool, str, str]  # type, status, reason, message
_PROGRESS_REASON = {
    "Progressing": "RolloutInProgress",
    "AwaitingPromotion": "AwaitingPromotion",
    "PostPromotion": "PostPromotion",
}


def wanted_conditions(
    facts: Facts, desired: d.Desired, resolution: Answer, gpu_note: str | None
) -> list[Wanted]:
    """What each condition should say now."""
    status, spec, cluster = facts.status, facts.ctx.spec, facts.cluster
    if isinstance(resolution, ResolvedModel):
        resolved: Wanted = (
            "ModelResolved",
            True,
            "Resolved",
            f"{spec.model.describe()} is version {resolution.version}",
        )
    else:
        resolved = ("ModelResolved", False, resolution.reason, resolution.message)
    degraded = degraded_reason(status, desired.version, desired.template_hash, cluster.observed)
    return [
        resolved,
        _progressing(status, cluster, gpu_note),
        ("Degraded", False, "AsExpected", "")
        if degraded is None
        else ("Degraded", True, degraded[0], degraded[1]),
        _ready(status, cluster),
    ]


def _progressing(status: TryOnModelStatus, cluster: ClusterView, gpu_note: str | None) -> Wanted:
    rollout = status.rollout
    if rollout is None:
        if status.active_color:
            message = f"version {status.active_version} serves on {status.active_color}"
            return ("Progressing", False, "RolloutComplete", message)
        return ("Progressing", False, "NoRollout", "nothing is serving yet")
    reason = _PROGRESS_REASON[rollout.phase]
    message = f"version {rollout.version} on {rollout.color}"
    preview = cluster.observed.color(rollout.color)
    if rollout.phase == "Progressing" and preview.pods_refused_message:
        # Not progressing at all: there are no pods to wait for until the cluster admits them.
        return ("Progressing", False, "PodsRefused", f"{message}: {refusal(preview)}")
    if rollout.phase == "Progressing" and preview.image_unavailable_pods:
        # Before unschedulable: pods that got a node but no image would not start anyway.
        return (
            "Progressing",
            True,
            "PreviewImageUnavailable",
            f"{message}: {image_problem(preview)}",
        )
    if rollout.phase == "Progressing" and preview.unschedulable_pods:
        # Say so within seconds instead of hanging quietly until the deadline.
        detail = gpu_note or preview.unschedulable_message
        message += f": {preview.unschedulable_pods} pod(s) cannot be scheduled: {detail}"
        return ("Progressing", True, "PreviewUnschedulable", message)
    if rollout.phase == "PostPromotion" and rollout.standby_replicas is not None:
        message += (
            f"; previous {rollout.previous_color} kept as a warm standby of "
            f"{rollout.standby_replicas} pod(s) (serving size {rollout.standby_serving_replicas})"
        )
    return ("Progressing", True, reason, message)


def _ready(status: TryOnModelStatus, cluster: ClusterView) -> Wanted:
    if status.active_color is None:
        rollout = status.rollout
        preview = cluster.observed.color(rollout.color) if rollout else None
        if rollout and preview and preview.pods_refused_message:
            message = f"version {rollout.version} on {rollout.color}: {refusal(preview)}"
            return ("Ready", False, "PodsRefused", message)
        return ("Ready", False, "NoActiveColor", "no colour has been promoted yet")
    view = cluster.observed.color(status.active_color)
    ready = view.exists and view.replicas > 0 and view.ready_replicas >= view.replicas
    return (
        "Ready",
        ready,
        "ActiveReady" if ready else "ActiveNotReady",
        f"version {status.active_version} on {status.active_color}: "
        f"{view.ready_replicas}/{view.replicas} pods Ready",
    )


def plan(
    facts: Facts, desired: d.Desired, resolution: Answer, gpu_note: str | None = None
) -> TryOnModelStatus:
    """Conditions, observedGeneration and phase for the status as ``facts`` show it."""
    status, generation = facts.status, facts.ctx.generation
    conds = status.conditions
    for type_, value, reason, message in wanted_conditions(facts, desired, resolution, gpu_note):
        conds = set_condition(conds, type_, value, reason, message, facts.now, generation)
    status = status.model_copy(update={"conditions": conds, "observed_generation": generation})
    return status.model_copy(update={"phase": derive_phase(status, facts.ctx.spec.paused)})


def invalid_status(
    status: TryOnModelStatus, message: str, now: datetime, generation: int | None
) -> TryOnModelStatus:
    conds = set_condition(
        status.conditions, "Degraded", True, "InvalidSpecError", message, now, generation
    )
    return status.model_copy(
        update={"conditions": conds, "observed_generation": generation, "phase": "Degraded"}
    )


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


def validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"spec.{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)
