"""Which version should serve: the registry's answer (cached), recorded in status, and the
``Desired`` state the rollout decision works towards."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..api.errors import ModelResolutionError
from ..api.models import ResolvedModelStatus, TryOnModelStatus
from ..api.vocabulary import ANNOTATION_PROMOTE, ANNOTATION_ROLLBACK
from ..decide import decision as d
from ..gateways.mlflow import ResolvedModel
from ..observe.views import ClusterView
from ..registry.cache import Answer, ResolutionCache
from .context import Effects, ReconcileContext
from .events import Told

log = logging.getLogger(__name__)


def resolve(
    ctx: ReconcileContext,
    fx: Effects,
    cache: ResolutionCache,
    status: TryOnModelStatus,
    now: datetime,
) -> tuple[TryOnModelStatus, Answer]:
    """Asks the registry (at most once per poll interval per question) and records the answer."""
    spec = ctx.spec
    kind, value = spec.model.selector
    key = (ctx.tracking_uri, spec.model.registered_model, kind, value)
    result = cache.get(key)
    if result is None:
        try:
            result = fx.registry.resolve(ctx.tracking_uri, spec.model)
        except ModelResolutionError as err:
            result = err
        cache.put(key, result)
    before = status.condition("ModelResolved")
    if isinstance(result, ModelResolutionError):
        if before is None or before.status != "False" or before.reason != result.reason:
            log.warning("model resolution failed: %s", result.message)
            fx.events.tell(
                ctx.owner,
                Told(
                    "Warning",
                    "ModelResolutionFailed",
                    f"{spec.model.describe()}: {result.reason}: {result.message}",
                ),
            )
        return status, result
    if before is not None and before.status == "False":
        fx.events.tell(
            ctx.owner,
            Told(
                "Normal",
                "ModelResolutionRecovered",
                f"{spec.model.describe()} is version {result.version} again",
            ),
        )
    return _record_resolution(ctx, fx, status, result, now), result


def _record_resolution(
    ctx: ReconcileContext,
    fx: Effects,
    status: TryOnModelStatus,
    result: ResolvedModel,
    now: datetime,
) -> TryOnModelStatus:
    kind, value = ctx.spec.model.selector
    selector = f"{kind} {value}"
    model_name = ctx.spec.model.registered_model
    previous = status.model
    if previous is not None and (
        previous.version,
        previous.registered_model,
        previous.selector,
        previous.run_id,
        previous.source,
    ) == (result.version, model_name, selector, result.run_id, result.source):
        return status
    moved = previous is None or previous.version != result.version
    if previous is not None and moved and result.version in status.rejected_versions:
        # The selector moved onto this version again: that is the signal to retry it.
        status = status.clearing_rejection(result.version)
    if moved:
        fx.events.tell(
            ctx.owner,
            Told(
                "Normal",
                "ModelResolved",
                f"{model_name} {selector} is version {result.version}",
                version=result.version,
                previous_version=previous.version if previous is not None else None,
                evidence={"selector": selector, "runId": result.run_id, "source": result.source},
            ),
        )
    model = ResolvedModelStatus(
        registered_model=model_name,
        selector=selector,
        version=result.version,
        run_id=result.run_id,
        source=result.source,
        changed_at=now if moved or previous is None else previous.changed_at,
    )
    return status.model_copy(update={"model": model})


def desired(
    ctx: ReconcileContext, status: TryOnModelStatus, cluster: ClusterView, resolution: Answer
) -> d.Desired:
    spec = ctx.spec
    replicas = spec.renderer.replicas
    if spec.autoscaling.enabled:
        active_replicas = (
            cluster.observed.color(status.active_color).replicas if status.active_color else 0
        )
        scaling = spec.autoscaling
        replicas = min(max(scaling.min_replicas, active_replicas), scaling.max_replicas)
    rollout = spec.rollout
    return d.Desired(
        version=resolution.version if isinstance(resolution, ResolvedModel) else None,
        template_hash=spec.renderer.template_hash(),
        replicas=replicas,
        paused=spec.paused,
        auto_promote=rollout.auto_promote,
        promote_requested_for=ctx.annotations.get(ANNOTATION_PROMOTE),
        rollback_requested_for=(ctx.annotations.get(ANNOTATION_ROLLBACK) or "").strip() or None,
        smoke_enabled=rollout.smoke_test.enabled,
        progress_deadline=timedelta(seconds=rollout.progress_deadline_seconds),
        scale_down_delay=timedelta(seconds=rollout.scale_down_delay_seconds),
        post_promotion=timedelta(seconds=rollout.post_promotion_seconds),
        gpu_shortage_policy=rollout.gpu_shortage_policy,
        warm_standby_replicas=rollout.warm_standby_replicas,
        autoscaled=spec.autoscaling.enabled,
    )


def first_seen(status: TryOnModelStatus, version: str, now: datetime) -> datetime:
    """When the registry change to ``version`` was first seen (promotion latency starts there)."""
    if status.model and status.model.version == version and status.model.changed_at:
        return status.model.changed_at
    return now
