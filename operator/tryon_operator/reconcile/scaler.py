"""The active colour's scaler: an HPA on CPU, KEDA's ScaledObject on a serving signal, or, without
KEDA, the operator's own loop on that signal; one per TryOnModel, moved with the flip (never two
over one Deployment). ``apply_scaler`` puts it on a colour (the flip, a flip back); ``keep_scaler``
holds it as the spec and the cluster say on every reconcile, turns the operator's own loop (the
reconcile is requeued every ``AUTOSCALE_PERIOD_SECONDS`` for it), and records what drives the
replicas in ``status.autoscaling``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from ..api.builders import build_hpa, build_scaled_object, deployment_name, serving_query
from ..api.errors import SignalError
from ..api.models import AutoscalingStatus, Color, TryOnModelStatus
from ..decide.autoscale import Reading, decide_replicas
from ..decide.scaling import ScalerChoice, choose_scaler, wants_hpa
from .context import Step
from .events import Told

# Prometheus scrapes every 2 s in the local cluster (hack/localcluster/prometheus.py), 15-30 s in
# most clusters; a 5 s turn keeps the decision within one scrape of the load step here.
AUTOSCALE_PERIOD_SECONDS = 5.0


def scaler_choice(step: Step) -> ScalerChoice:
    autoscaling = step.ctx.spec.autoscaling
    wants_keda = autoscaling.enabled and not wants_hpa(autoscaling)
    return choose_scaler(
        autoscaling,
        keda_served=wants_keda and step.fx.kube.serves_scaled_objects(),
        prometheus_url=step.fx.settings.prometheus_url,
    )


def apply_scaler(step: Step, color: Color) -> TryOnModelStatus:
    """Points the chosen scaler at ``color`` (and removes the other kind); the status to keep."""
    return _put_scaler(step, color, scaler_choice(step))


def _put_scaler(step: Step, color: Color, choice: ScalerChoice) -> TryOnModelStatus:
    ctx, kube = step.ctx, step.fx.kube
    status = step.status
    if choice.kind == "HorizontalPodAutoscaler":
        kube.apply(build_hpa(ctx.spec, ctx.owner, color=color))
    elif step.cluster.hpa.exists:
        kube.delete_hpa(ctx.namespace, ctx.name)
    applied = None
    if choice.kind == "ScaledObject":
        scaled = _scaled_object(step, color, choice)
        applied = _hash(scaled)
        if status.autoscaling is None or status.autoscaling.applied != applied:
            kube.apply_scaled_object(scaled)
    elif status.autoscaling is not None and status.autoscaling.scaler == "ScaledObject":
        kube.delete_scaled_object(ctx.namespace, ctx.name)
    step.fx.scale_memory.forget(ctx.namespace, ctx.name, keep=color)
    return _with_autoscaling(step, choice, color, applied)


def keep_scaler(step: Step) -> TryOnModelStatus:
    """Steady state: the scaler the spec asks for on the active colour, or none and why. The HPA
    itself is self-healed from the watch cache (``heal.py``); the ScaledObject, not watched, is
    applied again whenever what it should be differs from what status says was applied."""
    active = step.status.active_color
    autoscaling = step.ctx.spec.autoscaling
    if active is None or (not autoscaling.enabled and step.status.autoscaling is None):
        return step.status
    choice = scaler_choice(step)
    if choice.kind == "HorizontalPodAutoscaler":
        return _with_autoscaling(step, choice, active, None, delete_scaled_object=True)
    said = step.status.autoscaling.message if step.status.autoscaling else ""
    status = _put_scaler(step, active, choice)
    if choice.kind == "TryOnModel":
        status = _turn_own_loop(replace(step, status=status), active, choice, said)
    return status


def _turn_own_loop(step: Step, color: Color, choice: ScalerChoice, said: str) -> TryOnModelStatus:
    """One turn of the operator's own loop: read the signal, decide, scale, say it (a problem
    only when it differs from what status ``said`` last turn)."""
    ctx, fx = step.ctx, step.fx
    scaling = ctx.spec.autoscaling
    deployment = deployment_name(ctx.name, color)
    view = step.cluster.observed.color(color)
    assert choice.prometheus is not None and step.status.autoscaling is not None
    problem = ""
    try:
        total = fx.signals.total(
            choice.prometheus, serving_query(scaling.metric, ctx.namespace, deployment)
        )
    except SignalError as err:
        total, problem = None, f"{err}; the replicas are held"
    reading = Reading(
        current=view.replicas,
        ready=view.ready_replicas,
        total=total,
        target=scaling.per_pod_target(),
        min_replicas=scaling.min_replicas,
        max_replicas=scaling.max_replicas,
        hold_scale_in=_holds_scale_in(step.status),
    )
    now = fx.monotonic()
    key = (ctx.namespace, ctx.name, color)
    since, history = fx.scale_memory.watched(key, now)
    window = float(scaling.scale_down_stabilization_seconds)
    decision = decide_replicas(reading, history, now=now, watched_since=since, window=window)
    fx.scale_memory.record(key, (now, decision.recommendation), window)
    if decision.desired != view.replicas and view.exists:
        fx.kube.scale(ctx.namespace, deployment, decision.desired)
        step.tell(Told(
            "Normal", "Rescaled",
            f"Deployment {deployment} {view.replicas} -> {decision.desired} replicas: "
            f"{scaling.metric} {decision.why}",
            color=color,
        ))  # fmt: skip
    if problem and said != problem:
        step.tell(Told("Warning", "AutoscalingUnavailable", problem))
    autoscaling = step.status.autoscaling.model_copy(
        update={"desired_replicas": decision.desired, "message": problem}
    )
    return step.status.model_copy(update={"autoscaling": autoscaling})


def _scaled_object(step: Step, color: Color, choice: ScalerChoice) -> dict[str, Any]:
    ctx = step.ctx
    assert choice.prometheus is not None
    # A stable fallback (not the current size): the object changes only with the spec or colour.
    scaling = ctx.spec.autoscaling
    fallback = min(max(scaling.min_replicas, ctx.spec.renderer.replicas), scaling.max_replicas)
    return build_scaled_object(
        ctx.spec,
        ctx.owner,
        color=color,
        prometheus=choice.prometheus,
        fallback_replicas=fallback,
        hold_scale_in=_holds_scale_in(step.status),
    )


def _holds_scale_in(status: TryOnModelStatus) -> bool:
    """A rollout or its rollback window is on: the scaler may grow the active colour, not shrink
    it (the same hold for the operator's own loop and KEDA's ScaledObject)."""
    return status.rollout is not None


def _with_autoscaling(
    step: Step,
    choice: ScalerChoice,
    color: Color,
    applied: str | None,
    *,
    delete_scaled_object: bool = False,
) -> TryOnModelStatus:
    ctx, status = step.ctx, step.status
    before = status.autoscaling
    if delete_scaled_object and before is not None and before.scaler == "ScaledObject":
        step.fx.kube.delete_scaled_object(ctx.namespace, ctx.name)
    autoscaling = ctx.spec.autoscaling
    if not autoscaling.enabled:
        return status.model_copy(update={"autoscaling": None})
    view = step.cluster.observed.color(color)
    now = AutoscalingStatus(
        scaler=choice.kind,
        metric=autoscaling.metric,
        target=autoscaling.per_pod_target(),
        scale_target=deployment_name(ctx.name, color) if choice.kind else None,
        current_replicas=view.ready_replicas if choice.kind and view.exists else None,
        desired_replicas=view.replicas if choice.kind and view.exists else None,
        applied=applied,
        message=choice.why_none,
    )
    if choice.why_none and (before is None or before.message != choice.why_none):
        step.tell(Told("Warning", "AutoscalingUnavailable", choice.why_none))
    return status.model_copy(update={"autoscaling": now})


def _hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
