"""The reconcile: read -> resolve -> observe -> (decide -> act -> write status)* -> heal ->
status -> settle requests. Every step it takes lives in a module of its own in this package."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..announce.announcer import Announcer
from ..api.builders import Owner
from ..api.errors import InvalidSpecError, KubeError, ModelResolutionError
from ..api.models import TryOnModelSpec, TryOnModelStatus, parse_status
from ..decide import decision as d
from ..gateways.ports import KubePort, RegistryPort, SignalPort, SmokePort
from ..gateways.prometheus import PrometheusSignals
from ..metrics import Metrics
from ..observe.views import GpuCapacity
from ..registry.cache import ResolutionCache, TtlCache
from ..registry.watchers import ModelWatchers
from ..settings import OperatorSettings
from . import heal, requests
from .actions import carry_out
from .context import Effects, ReconcileContext, Step
from .events import EventSink, Told
from .problems import announce_phase, notice, pods_refused
from .promotion import await_promotion, run_smoke_test
from .resolve import desired as desired_state
from .resolve import resolve
from .scale_memory import ScaleMemory
from .scaler import AUTOSCALE_PERIOD_SECONDS, keep_scaler
from .status import invalid_status, validation_message
from .status import plan as conditions
from .tags import pay_owed

log = logging.getLogger(__name__)

GPU_CAPACITY_TTL_SECONDS = 2.0
MAX_STEPS = 10


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReconcileResult:
    status: TryOnModelStatus
    action: str
    requeue_seconds: float | None
    wrote_status: bool


class Reconciler:
    """Drives one TryOnModel one step closer to what its spec and the registry ask for.

    The work queue guarantees one reconcile in flight per object; different objects run on
    different threads at once, so everything shared here is thread-safe.
    """

    def __init__(  # noqa: PLR0913 - keyword-only ports
        self,
        *,
        kube: KubePort,
        registry: RegistryPort,
        smoke: SmokePort,
        settings: OperatorSettings,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        cache: ResolutionCache | None = None,
        announcer: Announcer | None = None,
        watchers: ModelWatchers | None = None,
        signals: SignalPort | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        # The registry poller and the webhook share these (runtime/wiring.py builds them); the
        # defaults serve a Reconciler on its own, as in tests.
        self._cache = cache or ResolutionCache(settings.mlflow_poll_seconds)
        self._watchers = watchers or ModelWatchers()
        self.announcer = announcer or Announcer()  # audit lines (+ notifications when set up)
        capacity = TtlCache[GpuCapacity | None](GPU_CAPACITY_TTL_SECONDS)

        def read_capacity(node_selector: dict[str, str]) -> GpuCapacity | None:
            def read() -> GpuCapacity | None:
                try:
                    return kube.gpu_capacity(node_selector)
                except KubeError as err:
                    log.warning("could not read GPU capacity: %s", err)
                    return None

            return capacity.get(tuple(sorted(node_selector.items())), read)

        self.fx = Effects(
            kube=kube,
            registry=registry,
            smoke=smoke,
            events=EventSink(kube, self.announcer),
            metrics=self.metrics,
            settings=settings,
            clock=clock,
            capacity=read_capacity,
            signals=signals or PrometheusSignals(),
            scale_memory=ScaleMemory(),
            monotonic=monotonic,
        )

    def reconcile(self, namespace: str, name: str) -> ReconcileResult | None:
        """Reconciles the TryOnModel as the operator last saw it; None when it is gone."""
        started = time.monotonic()
        body = self.fx.kube.get_tryonmodel(namespace, name)
        if body is None:
            return None
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            # Garbage collection is removing the children; self-heal must not fight it.
            return None
        try:
            return self._reconcile(body)
        finally:
            self.metrics.reconcile_seconds.labels(namespace, name).observe(
                time.monotonic() - started
            )

    def _context(self, body: dict[str, Any], old: TryOnModelStatus) -> ReconcileContext:
        meta = body["metadata"]
        owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
        generation = meta.get("generation")
        try:
            spec = TryOnModelSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            message = validation_message(err)
            told = old.condition("Degraded")
            if told is None or (told.reason, told.message) != ("InvalidSpecError", message):
                self.fx.events.tell(owner, Told("Warning", "InvalidSpec", message))
            self._write_status(
                owner, old, invalid_status(old, message, self.fx.clock(), generation)
            )
            raise InvalidSpecError(message) from err
        return ReconcileContext(
            owner=owner,
            spec=spec,
            tracking_uri=spec.mlflow.tracking_uri or self.settings.mlflow_tracking_uri,
            annotations=dict(meta.get("annotations") or {}),
            generation=generation,
        )

    def _reconcile(self, body: dict[str, Any]) -> ReconcileResult:
        fx = self.fx
        old = parse_status(body.get("status"))
        ctx = self._context(body, old)
        self._watchers.follow((ctx.namespace, ctx.name), ctx.spec.model.registered_model)
        self.announcer.observe(ctx.owner, ctx.annotations, ctx.spec.model.registered_model)
        now = fx.clock()
        status, resolution = resolve(ctx, fx, self._cache, old, now)
        if status.pending_registry_tags and not isinstance(resolution, ModelResolutionError):
            status = pay_owed(ctx, fx, status)
        cluster = fx.kube.observe(ctx.namespace, ctx.name)
        step = Step(ctx, fx, status, cluster, now)
        status, retry_problem = requests.take_retry(step.facts)
        # Before deciding: a deadline starts over once refused pods are admitted.
        step = replace(step, status=pods_refused(replace(step, status=status)))
        desired = desired_state(ctx, status, cluster, resolution)

        action: d.Action = d.Steady()
        observed = cluster.observed
        written = old
        fulfilled: set[str] = set()
        for _ in range(MAX_STEPS):
            step = replace(step, now=fx.clock())
            action = d.decide(desired, step.status, observed, step.now)
            if isinstance(action, d.RunSmokeTest):
                status, outcome = run_smoke_test(step, action)
                observed = replace(observed, smoke=outcome)
                step = replace(step, status=status)
                continue
            if isinstance(action, d.AwaitPromotion):
                step = replace(step, status=await_promotion(step))
                break
            if isinstance(action, d.WAITING):
                break
            fulfilled |= requests.fulfilled_by(action, desired, step.status)
            status = carry_out(step, action)
            cluster = fx.kube.observe(ctx.namespace, ctx.name)
            observed = cluster.observed
            step = replace(step, status=status, cluster=cluster)
            step, gpu_note = notice(step)
            # Record each transition at once, so a crash right after it cannot repeat it.
            step = replace(step, status=conditions(step.facts, desired, resolution, gpu_note))
            if self._write_status(ctx.owner, written, step.status):
                written = step.status

        status, repairs = heal.plan(step.facts)
        heal.repair(replace(step, status=status), repairs)
        step = replace(step, status=keep_scaler(replace(step, status=status)))
        step, gpu_note = notice(step)
        step = replace(step, status=conditions(step.facts, desired, resolution, gpu_note))
        announce_phase(fx.events, ctx.owner, old, step.status)
        wrote = self._write_status(ctx.owner, written, step.status) or written != old
        requests.settle(step, desired, requests.plan(step.facts, desired, fulfilled, retry_problem))
        self._export(ctx, step.status)
        log.debug("%s/%s decided %r", ctx.namespace, ctx.name, action)
        requeue = _requeue_seconds(action, step.status)
        return ReconcileResult(step.status, type(action).__name__, requeue, wrote)

    def _export(self, ctx: ReconcileContext, status: TryOnModelStatus) -> None:
        self.metrics.set_active(ctx.namespace, ctx.name, status.active_version, status.active_color)
        self.metrics.rejected_versions.labels(ctx.namespace, ctx.name).set(
            len(status.rejected_versions)
        )
        for condition in status.conditions:
            self.metrics.condition.labels(ctx.namespace, ctx.name, condition.type).set(
                1 if condition.status == "True" else 0
            )

    def _write_status(self, owner: Owner, old: TryOnModelStatus, new: TryOnModelStatus) -> bool:
        if new == old:
            return False
        self.fx.kube.patch_status(owner.namespace, owner.name, new.to_patch())
        return True


def _requeue_seconds(action: d.Action, status: TryOnModelStatus) -> float | None:
    """A rollout's wait or the next turn of the operator's own scaling loop, the sooner."""
    requeue = action.seconds if isinstance(action, d.Wait) else None
    autoscaling = status.autoscaling
    if autoscaling is not None and autoscaling.scaler == "TryOnModel":
        return min(requeue or AUTOSCALE_PERIOD_SECONDS, AUTOSCALE_PERIOD_SECONDS)
    return requeue
