"""Problems worth an Event the moment they appear (a preview short of GPUs, pods without their
image, pods the API server refused) and the phase changes worth one (Degraded, recovered), with
the words and evidence that describe them. Each is told once: the rollout or the status
remembers that it was."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..api.builders import Owner
from ..api.models import Color, RolloutState, TryOnModelSpec, TryOnModelStatus
from ..api.vocabulary import GPU
from ..observe.parse import quantity
from ..observe.views import ClusterView, ColorView, GpuCapacity
from .context import Step, with_rollout
from .events import EventSink, Told

log = logging.getLogger(__name__)


def notice(step: Step) -> tuple[Step, str | None]:
    """Tells each problem the preview shows now, once; returns the step on the status that
    remembers what was told, and the GPU note the Progressing condition quotes."""
    status, gpu_note = gpu_shortage(step)
    step = replace(step, status=pods_refused(replace(step, status=status)))
    image_unavailable(step)
    return step, gpu_note


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
    note = gpu_shortage_note(spec, rollout, preview, capacity, step.now)
    if rollout.gpu_shortage_reported:
        return status, note
    shown = {"gpuShortPods": preview.gpu_short_pods, "scheduler": preview.unschedulable_message}
    step.tell(step.about("Warning", "GPUShortage", note, evidence=shown))
    return with_rollout(status, gpu_shortage_reported=True), note


def gpu_shortage_note(
    spec: TryOnModelSpec,
    rollout: RolloutState,
    preview: ColorView,
    capacity: GpuCapacity | None,
    now: datetime,
) -> str:
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
    shown = {
        "imageUnavailablePods": preview.image_unavailable_pods,
        "kubelet": preview.image_unavailable_message,
    }
    message = f"{label} {image_problem(preview)}"
    step.tell(step.about("Warning", "ImageUnavailable", message, evidence=shown))


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
    shown = {"apiServer": preview.pods_refused_message}
    step.tell(step.about("Warning", "PodsRefused", message, evidence=shown))
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


def image_problem(view: ColorView) -> str:
    return f"{view.image_unavailable_pods} pod(s) cannot start: {view.image_unavailable_message}"


def evidence(cluster: ClusterView, color: Color, detail: str) -> dict[str, Any]:
    """What the cluster showed about a colour when a rollout of it was given up."""
    view = cluster.observed.color(color)
    return {
        "detail": detail,
        "readyPods": f"{view.ready_replicas}/{view.replicas}",
        "availablePods": view.available_replicas,
        "crashLoopingPods": view.crashlooping_pods,
        "unschedulablePods": view.unschedulable_pods,
        "unschedulable": view.unschedulable_message or None,
        "smoke": cluster.observed.smoke.message if cluster.observed.smoke else None,
    }
