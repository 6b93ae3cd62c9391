"""Status as the cluster shows it: the four conditions and the phase (pure), plus the three
problems worth an Event the moment they appear (GPU shortage, image unavailable, pods refused)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..api.builders import Owner
from ..api.errors import ModelResolutionError
from ..api.models import ConditionType, RolloutState, TryOnModelSpec, TryOnModelStatus
from ..api.vocabulary import GPU
from ..decide import decision as d
from ..decide.conditions import degraded_reason, derive_phase, set_condition
from ..gateways.mlflow import ResolvedModel
from ..observe.parse import quantity
from ..observe.views import ClusterView, ColorView, GpuCapacity
from ..registry.cache import Answer
from .context import Step, with_rollout
from .events import EventSink, Told
from .history import image_problem

log = logging.getLogger(__name__)

Wanted = tuple[ConditionType, bool, str, str]  # type, status, reason, message
_PROGRESS_REASON = {
    "Progressing": "RolloutInProgress",
    "AwaitingPromotion": "AwaitingPromotion",
    "PostPromotion": "PostPromotion",
}


def wanted_conditions(
    step: Step, desired: d.Desired, resolution: Answer, gpu_note: str | None
) -> list[Wanted]:
    """What each condition should say now; no I/O, so the table tests can pin every case."""
    status, spec, cluster = step.status, step.ctx.spec, step.cluster
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


def finish_status(
    step: Step, desired: d.Desired, resolution: Answer, gpu_note: str | None = None
) -> TryOnModelStatus:
    """Conditions, observedGeneration and phase for the status as it stands after ``step``."""
    status, generation = step.status, step.ctx.generation
    if isinstance(resolution, ModelResolutionError):
        old = status.condition("ModelResolved")
        if old is None or old.status != "False" or old.reason != resolution.reason:
            log.warning("model resolution failed: %s", resolution.message)
    conds = status.conditions
    for type_, value, reason, message in wanted_conditions(step, desired, resolution, gpu_note):
        conds = set_condition(conds, type_, value, reason, message, step.now, generation)
    status = status.model_copy(update={"conditions": conds, "observed_generation": generation})
    return status.model_copy(update={"phase": derive_phase(status, step.ctx.spec.paused)})


def invalid_status(
    status: TryOnModelStatus, message: str, now: datetime, generation: int | None
) -> TryOnModelStatus:
    conds = set_condition(
        status.conditions, "Degraded", True, "InvalidSpecError", message, now, generation
    )
    return status.model_copy(
        update={"conditions": conds, "observed_generation": generation, "phase": "Degraded"}
    )


def gpu_shortage(step: Step) -> tuple[TryOnModelStatus, str | None]:
    """Puts numbers on a preview short of GPUs, and says so once per rollout as an Event."""
    status = step.status
    rollout = status.rollout
    if rollout is None or rollout.phase != "Progressing":
        return status, None
    preview = step.cluster.observed.color(rollout.color)
    if not preview.gpu_short_pods:
        return status, None
    spec = step.ctx.spec
    capacity = step.fx.capacity(dict(spec.renderer.node_selector))
    note = gpu_shortage_note(spec, rollout, (preview, capacity), step.now)
    if rollout.gpu_shortage_reported:
        return status, note
    evidence = {"gpuShortPods": preview.gpu_short_pods, "scheduler": preview.unschedulable_message}
    step.tell(step.about("Warning", "GPUShortage", note, evidence=evidence))
    return with_rollout(status, gpu_shortage_reported=True), note


def gpu_shortage_note(
    spec: TryOnModelSpec,
    rollout: RolloutState,
    seen: tuple[ColorView, GpuCapacity | None],
    now: datetime,
) -> str:
    preview, capacity = seen
    resources = spec.renderer.resources
    per_pod = quantity(resources.limits.get(GPU, resources.requests.get(GPU, 0)))
    if capacity is None:
        free = "free GPUs unknown"
    elif capacity.free is None:
        free = f"{capacity.allocatable} allocatable on {capacity.nodes} matching node(s)"
    else:
        free = (
            f"{capacity.free} of {capacity.allocatable} allocatable free on "
            f"{capacity.nodes} matching node(s)"
        )
    policy = spec.rollout.gpu_shortage_policy
    left = rollout.started_at + timedelta(seconds=spec.rollout.progress_deadline_seconds) - now
    seconds_left = max(int(left.total_seconds()), 0)
    plan = {
        "Wait": f"waiting, rolled back at the progress deadline in {seconds_left}s",
        "ShrinkPreview": "the preview runs with the pods that fit, grows after the flip",
        "InPlace": "active pods are given up to make room",
    }[policy]
    return (
        f"preview needs {rollout.replicas * per_pod} {GPU} ({rollout.replicas} pod(s) x "
        f"{per_pod}), {preview.gpu_short_pods} pod(s) got none; {free}; "
        f"gpuShortagePolicy {policy}: {plan}"
    )


def image_unavailable(step: Step) -> None:
    """One Warning Event when preview pods are first seen unable to get their image.

    The Progressing condition is the memory: once it names the problem for this rollout it is
    written to status, so later looks (and a restarted operator) do not tell it again.
    """
    status = step.status
    rollout = status.rollout
    if rollout is None or rollout.phase != "Progressing":
        return
    preview = step.cluster.observed.color(rollout.color)
    if not preview.image_unavailable_pods:
        return
    told = status.condition("Progressing")
    label = f"version {rollout.version} on {rollout.color}:"
    if told and told.reason == "PreviewImageUnavailable" and told.message.startswith(label):
        return
    evidence = {
        "imageUnavailablePods": preview.image_unavailable_pods,
        "kubelet": preview.image_unavailable_message,
    }
    message = f"{label} {image_problem(preview)}"
    step.tell(step.about("Warning", "ImageUnavailable", message, evidence=evidence))


# What refused the pods, by the words the API server uses for each admission step.
# First match wins: a webhook's own message may hold any words, so it is recognised before the
# LimitRange plugin's phrases ("maximum cpu usage per Container is 1, but limit is 2").
_REFUSERS = (
    ("exceeded quota", "a ResourceQuota (not a GPU shortage on the nodes: raise or free it)"),
    ("violates PodSecurity", "Pod Security admission (the namespace's enforce level)"),
    ("admission webhook", "an admission webhook"),
    ("LimitRange", "a LimitRange"),
    ("usage per Container", "a LimitRange"),
    ("usage per Pod", "a LimitRange"),
    ("limit to request ratio", "a LimitRange"),
)


def refusal(view: ColorView) -> str:
    """The refusal in words: who refused, then the API server's own message."""
    refuser = next(
        (who for words, who in _REFUSERS if words in view.pods_refused_message), "admission"
    )
    return f"the API server refused its pods, by {refuser}: {view.pods_refused_message}"


def pods_refused(step: Step) -> TryOnModelStatus:
    """One Warning Event when the preview's pods are first refused; once they are admitted
    again, the progress deadline starts over (``RolloutState.progress_since``)."""
    status = step.status
    rollout = status.rollout
    if rollout is None or rollout.phase != "Progressing":
        return status
    preview = step.cluster.observed.color(rollout.color)
    if not preview.pods_refused_message:
        if rollout.pods_refused_reported:
            log.info("%s's pods are admitted again; its deadline starts over", rollout.color)
            return with_rollout(status, pods_refused_reported=False, progress_since=step.now)
        return status
    if rollout.pods_refused_reported:
        return status
    message = f"version {rollout.version} on {rollout.color}: {refusal(preview)}"
    evidence = {"apiServer": preview.pods_refused_message}
    step.tell(step.about("Warning", "PodsRefused", message, evidence=evidence))
    return with_rollout(status, pods_refused_reported=True)


def announce_phase(
    events: EventSink, owner: Owner, old: TryOnModelStatus, new: TryOnModelStatus
) -> None:
    """Degraded and recovered are told once, on the transition."""
    if new.phase == "Degraded" and old.phase != "Degraded":
        cond = new.condition("Degraded")
        reason = cond.reason if cond is not None else "Degraded"
        detail = cond.message if cond is not None else ""
        told = Told(
            "Warning",
            "Degraded",
            f"{reason}: {detail}" if detail else reason,
            decision="degrade",
            version=new.model.version if new.model else None,
            color=new.active_color,
            previous_version=new.active_version,
            evidence={"condition": reason},
        )
        events.tell(owner, told)
    elif old.phase == "Degraded" and new.phase == "Healthy":
        told = Told(
            "Normal",
            "Recovered",
            f"version {new.active_version} serves on {new.active_color}",
            decision="recover",
            version=new.active_version,
            color=new.active_color,
        )
        events.tell(owner, told)
