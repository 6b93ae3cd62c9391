"""The flip and what surrounds it: the smoke test before, growing a shrunk preview after, the
wait for a person, and the GPU-shortage policies that make room for a preview."""

from __future__ import annotations

import json
from dataclasses import replace

from ..api.builders import build_service, preview_service_name
from ..api.models import RolloutState, TryOnModelSpec, TryOnModelStatus
from ..api.vocabulary import ANNOTATION_PROMOTE, LABEL_COLOR, TAG_PROMOTED, TAG_STOPPED
from ..decide import decision as d
from ..observe.views import SmokeOutcome
from .context import Step, must, with_rollout
from .events import Told
from .problems import gpu_shortage
from .scaler import apply_scaler
from .tags import tag


def run_smoke_test(step: Step, action: d.RunSmokeTest) -> tuple[TryOnModelStatus, SmokeOutcome]:
    """Calls the preview's smoke endpoint; the caller adds the outcome to what it observed."""
    ctx, fx = step.ctx, step.fx
    rollout = must(step.status.rollout)
    url = fx.settings.service_url(
        preview_service_name(ctx.name), ctx.namespace, ctx.spec.service.port
    )
    outcome = fx.smoke.check(url, rollout.version, ctx.spec.rollout.smoke_test.timeout_seconds)
    status = step.status
    if outcome.reachable and outcome.passed:
        status = with_rollout(status, smoke_passed=True)
        message = f"version {rollout.version} on {action.color}: {outcome.message}"
        evidence = {"smoke": outcome.message, "url": url}
        step.tell(step.about("Normal", "SmokeTestPassed", message, evidence=evidence))
    return status, outcome


def await_promotion(step: Step) -> TryOnModelStatus:
    rollout = must(step.status.rollout)
    if rollout.phase == "AwaitingPromotion":
        return step.status
    message = (
        f"version {rollout.version} on {rollout.color} is Ready and tested; "
        f"annotate {ANNOTATION_PROMOTE}={rollout.version} to promote"
    )
    step.tell(step.about("Normal", "AwaitingPromotion", message))
    return with_rollout(step.status, phase="AwaitingPromotion", ready_at=step.fx.clock())


def promote(step: Step, action: d.Promote) -> TryOnModelStatus:
    """Points the active Service at the preview; the old colour stays warm for the delay."""
    ctx, fx, status, now = step.ctx, step.fx, step.status, step.now
    rollout = must(status.rollout)
    if rollout.full_replicas is not None and rollout.full_replicas > rollout.replicas:
        _grow_shrunk_preview(step, rollout)
    # The Service may not exist yet on a first deploy; converge creates it with this colour.
    promoted = status.model_copy(
        update={
            "active_color": action.color,
            "active_version": rollout.version,
            "active_template_hash": rollout.template_hash,
            "active_renderer": renderer_record(ctx.spec),
            "preview_color": None,
            "preview_version": None,
            "rollout": rollout.model_copy(
                update={
                    "phase": "PostPromotion",
                    "promoted_at": now,
                    "previous_color": status.active_color,
                    "previous_version": status.active_version,
                    "previous_template_hash": status.active_template_hash,
                    "previous_renderer": status.active_renderer,
                }
            ),
        }
    )
    fx.kube.apply(build_service(ctx.spec, ctx.owner, color=action.color, preview=False))
    if ctx.spec.autoscaling.enabled:  # the scaler moves with the traffic
        promoted = apply_scaler(replace(step, status=promoted), action.color)
    latency = (now - (rollout.seen_at or rollout.started_at)).total_seconds()
    fx.metrics.promotion_latency.labels(ctx.namespace, ctx.name).observe(max(latency, 0.0))
    step.count("promoted")
    message = (
        f"traffic flipped to {action.color} (version {rollout.version}) "
        f"{latency:.1f}s after the model change was seen; previous "
        f"{status.active_color or 'none'} (version {status.active_version or '-'}) kept warm"
    )
    evidence = {
        "latencySeconds": round(latency, 1),
        "smokePassed": rollout.smoke_passed,
        "selector": f"{LABEL_COLOR}={action.color}",
    }
    step.tell(step.about("Normal", "Promoted", message, previous=True, evidence=evidence))
    where = f"{ctx.namespace}/{ctx.name}"
    note = f"{where} promoted to {action.color} at {now.isoformat()}"
    promoted = tag(ctx, fx, promoted, rollout.version, TAG_PROMOTED, note)
    if status.active_version is not None and status.active_version != rollout.version:
        note = (
            f"{where} stopped serving at {now.isoformat()}: replaced by version "
            f"{rollout.version} on {action.color}"
        )
        promoted = tag(ctx, fx, promoted, status.active_version, TAG_STOPPED, note)
    return promoted


def _grow_shrunk_preview(step: Step, rollout: RolloutState) -> None:
    """After a flip on a shrunk preview: grow it, and shrink the old colour as much."""
    status = step.status
    full = must(rollout.full_replicas)
    step.scale(rollout.color, full)
    if status.active_color is not None:
        old = step.cluster.observed.color(status.active_color)
        keep = max(1, old.replicas - (full - rollout.replicas))
        if keep < old.replicas:
            step.scale(status.active_color, keep)
    message = (
        f"{rollout.color} (version {rollout.version}) promoted with {rollout.replicas} "
        f"pod(s), growing to {full}"
    )
    step.tell(step.about("Normal", "PreviewGrowing", message))


def ease_gpu_shortage(step: Step, action: d.ShrinkPreview | d.MakeRoom) -> TryOnModelStatus:
    """Carries out the spec's GPU-shortage policy; the rollout remembers what it changed."""
    # The GPUShortage Event goes out before the policy acts on it.
    status, _ = gpu_shortage(step)
    rollout = must(status.rollout)
    preview = step.cluster.observed.color(rollout.color)
    short = f"{preview.gpu_short_pods} of {rollout.replicas} preview pod(s) got no GPU"
    step.scale(action.color, action.replicas)
    if isinstance(action, d.ShrinkPreview):
        message = (
            f"{short}: preview {action.color} (version {rollout.version}) runs with "
            f"{action.replicas} pod(s) (gpuShortagePolicy ShrinkPreview); it grows to "
            f"{rollout.full_replicas or rollout.replicas} after the flip"
        )
        evidence = {"replicas": action.replicas, "gpuShortPods": preview.gpu_short_pods}
        step.tell(step.about("Warning", "PreviewShrunk", message, evidence=evidence))
        return with_rollout(
            status,
            full_replicas=rollout.full_replicas or rollout.replicas,
            replicas=action.replicas,
        )
    active = step.cluster.observed.color(action.color)
    step.tell(
        Told(
            "Warning",
            "MadeRoomForPreview",
            f"{short}: active {action.color} (version {status.active_version}) scaled from "
            f"{active.replicas} to {action.replicas} pod(s) to free GPUs for version "
            f"{rollout.version} (gpuShortagePolicy InPlace)",
            version=rollout.version,
            color=action.color,
            previous_version=status.active_version,
            evidence={"activeReplicas": action.replicas, "roomMade": action.room_made},
        )
    )
    return with_rollout(status, room_made=action.room_made)


def renderer_record(spec: TryOnModelSpec) -> str:
    """The renderer spec as promoted, kept in status so heal rebuilds the active colour from
    it (``heal.active_spec``) while a newer spec waits for its rollout."""
    return json.dumps(
        spec.renderer.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
