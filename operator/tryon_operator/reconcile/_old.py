"""One reconcile behind every handler: observe, decide, act, converge, write status if changed."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from . import decision as d
from .announce import Announcer
from .builders import (
    LABEL_COLOR,
    Owner,
    build_deployment,
    build_hpa,
    build_service,
    deployment_name,
    preview_service_name,
    selector_labels,
)
from .conditions import degraded_reason, derive_phase, set_condition
from .errors import InvalidSpecError, KubeError, ModelResolutionError, RegistryError
from .gateways.kube import GPU, ClusterView, GpuCapacity, ServiceView
from .gateways.mlflow import ResolvedModel
from .manual import (
    ANNOTATION_PROMOTE,
    ANNOTATION_RETRY,
    ANNOTATION_ROLLBACK,
    EVENT_IGNORED,
    EVENT_RETRY,
    REQUEST_ANNOTATIONS,
    fulfilled_by,
    promote_problem,
    retry,
)
from .metrics import Metrics
from .models import (
    COLORS,
    Color,
    HistoryEntry,
    ModelRef,
    Outcome,
    PendingTag,
    RendererSpec,
    ResolvedModelStatus,
    RolloutState,
    TryOnModelSpec,
    TryOnModelStatus,
    other_color,
    parse_status,
)
from .settings import OperatorSettings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

TAG_REJECTED = "tryon.dev/rejected"
TAG_VALUE_LIMIT = 5000  # MLflow's limit on a tag value
GPU_CAPACITY_TTL_SECONDS = 2.0
OWED_TAGS_LIMIT = 20  # status stays small; the oldest owed tag is dropped first
TAG_PROMOTED = "tryon.dev/promoted"
TAG_STOPPED = "tryon.dev/stopped"
MAX_STEPS = 10


class KubePort(Protocol):
    def get_tryonmodel(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def observe(self, namespace: str, name: str) -> ClusterView: ...
    def apply(self, obj: dict[str, Any]) -> None: ...
    def scale(self, namespace: str, name: str, replicas: int) -> None: ...
    def set_selector_color(self, namespace: str, service: str, color: str) -> None: ...
    def delete_hpa(self, namespace: str, name: str) -> None: ...
    def restore_template(self, obj: dict[str, Any]) -> None: ...
    def gpu_capacity(self, node_selector: dict[str, str]) -> GpuCapacity: ...
    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    def emit_event(self, owner: Owner, type_: str, reason: str, message: str) -> None: ...
    def remove_annotation(self, namespace: str, name: str, key: str) -> None: ...


class RegistryPort(Protocol):
    def resolve(self, tracking_uri: str, ref: ModelRef) -> ResolvedModel: ...
    def set_version_tag(
        self, tracking_uri: str, name: str, version: str, key: str, value: str
    ) -> None: ...


class SmokePort(Protocol):
    def check(
        self, base_url: str, version: str, timeout: float | None = None
    ) -> d.SmokeOutcome: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


ResolutionKey = tuple[str, str, str, str]  # tracking URI, registered model, selector kind, value


@dataclass
class _CacheEntry:
    key: ResolutionKey
    fetched: float
    result: ResolvedModel | ModelResolutionError
    failures: int = 0


class ResolutionCache:
    """Memory of the last registry answer per selector, so MLflow is polled on its own interval.

    Shared by every TryOnModel that asks the same question (tracking URI, model, selector): N
    objects on one registered model cost one registry call per interval, not N.
    """

    def __init__(self, poll_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self._poll = poll_seconds
        self._monotonic = monotonic
        self._entries: dict[ResolutionKey, _CacheEntry] = {}
        self._lock = threading.Lock()

    def get(self, key: ResolutionKey) -> ResolvedModel | ModelResolutionError | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            # Failures retry with backoff: 1 s, 2 s, 4 s ... up to the poll interval.
            ttl = (
                self._poll
                if isinstance(entry.result, ResolvedModel)
                else min(self._poll, 2.0 ** (entry.failures - 1))
            )
            if self._monotonic() - entry.fetched >= ttl:
                return None
            return entry.result

    def put(self, key: ResolutionKey, result: ResolvedModel | ModelResolutionError) -> None:
        with self._lock:
            old = self._entries.get(key)
            failures = 0
            if isinstance(result, ModelResolutionError):
                failures = (old.failures if old is not None else 0) + 1
            self._entries[key] = _CacheEntry(key, self._monotonic(), result, failures)

    def snapshot(self) -> dict[ResolutionKey, ResolvedModel | ModelResolutionError]:
        """Every question asked so far and its last answer (for the registry poller)."""
        with self._lock:
            return {key: entry.result for key, entry in self._entries.items()}

    def invalidate(self, registered_model: str | None = None) -> None:
        with self._lock:
            for key in list(self._entries):
                if registered_model is None or key[1] == registered_model:
                    del self._entries[key]


@dataclass(frozen=True)
class ReconcileResult:
    status: TryOnModelStatus
    action: str
    requeue_seconds: float | None
    wrote_status: bool


class Reconciler:
    """Drives one TryOnModel one step closer to what its spec and the registry ask for."""

    def __init__(
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
    ) -> None:
        self.kube = kube
        self.registry = registry
        self.smoke = smoke
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.cache = cache or ResolutionCache(settings.mlflow_poll_seconds)
        self.announcer = announcer or Announcer()  # audit lines (+ notifications when set up)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.watched: dict[str, set[tuple[str, str]]] = {}
        self._gpu_capacity = _Recent[GpuCapacity | None](GPU_CAPACITY_TTL_SECONDS)

    def lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    # ------------------------------------------------------------------ entry

    def reconcile(self, namespace: str, name: str) -> ReconcileResult | None:
        """Reconciles the TryOnModel as the API server has it now (never a stale event body)."""
        started = time.monotonic()
        with self.lock_for(f"{namespace}/{name}"):
            body = self.kube.get_tryonmodel(namespace, name)
            if body is None:
                return None
            meta = body["metadata"]
            if meta.get("deletionTimestamp"):
                # Garbage collection is removing the children; self-heal must not fight it.
                return None
            owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
            try:
                return self._reconcile(owner, body)
            finally:
                self.metrics.reconcile_seconds.labels(namespace, name).observe(
                    time.monotonic() - started
                )

    def _reconcile(self, owner: Owner, body: Mapping[str, Any]) -> ReconcileResult:
        meta = body["metadata"]
        generation = meta.get("generation")
        old_status = parse_status(body.get("status"))
        now = self.clock()
        try:
            spec = TryOnModelSpec.model_validate(body.get("spec") or {})
        except ValidationError as err:
            message = _validation_message(err)
            status = self._invalid_status(old_status, message, now, generation)
            self._write_status(owner, old_status, status)
            raise InvalidSpecError(message) from err

        self.watched.setdefault(spec.model.registered_model, set()).add(
            (owner.namespace, owner.name)
        )
        self.announcer.observe(owner, meta.get("annotations"), spec.model.registered_model)
        tracking_uri = spec.mlflow.tracking_uri or self.settings.mlflow_tracking_uri
        status, resolution = self._resolve(owner, spec, old_status, tracking_uri, now)
        if status.pending_registry_tags and not isinstance(resolution, ModelResolutionError):
            status = self._pay_owed_tags(status, tracking_uri, spec)
        status, retry_problem = self._take_retry(meta, status)
        cluster = self.kube.observe(owner.namespace, owner.name)
        desired = self._desired(meta, spec, status, cluster, resolution)

        action: d.Action = d.Steady()
        observed = cluster.observed
        written = old_status
        fulfilled: set[str] = set()
        for _ in range(MAX_STEPS):
            now = self.clock()
            action = d.decide(desired, status, observed, now)
            if isinstance(action, d.RunSmokeTest):
                url = self.settings.service_url(
                    preview_service_name(owner.name), owner.namespace, spec.service.port
                )
                assert status.rollout is not None
                outcome = self.smoke.check(
                    url, status.rollout.version, spec.rollout.smoke_test.timeout_seconds
                )
                if outcome.reachable and outcome.passed:
                    status = _with_rollout(status, smoke_passed=True)
                    self._event(
                        owner,
                        "Normal",
                        "SmokeTestPassed",
                        f"version {status.rollout.version if status.rollout else '?'} "
                        f"on {action.color}: {outcome.message}",
                        version=status.rollout.version if status.rollout else None,
                        color=action.color,
                        evidence={"smoke": outcome.message, "url": url},
                    )
                observed = replace(observed, smoke=outcome)
                continue
            if isinstance(action, d.AwaitPromotion):
                status = self._await_promotion(owner, status)
                break
            if isinstance(action, d.WAITING):
                break
            fulfilled |= fulfilled_by(action, desired, status)
            status = self._execute(owner, spec, tracking_uri, status, action, cluster, now)
            cluster = self.kube.observe(owner.namespace, owner.name)
            observed = cluster.observed
            # Record each transition at once, so a crash right after it cannot repeat it.
            status, gpu_note = self._gpu_shortage(owner, spec, status, cluster, now)
            self._image_unavailable(owner, status, cluster)
            status = self._finish_status(
                spec, status, desired, cluster, resolution, now, generation, gpu_note
            )
            if self._write_status(owner, written, status):
                written = status

        status = self._converge(owner, spec, tracking_uri, status, cluster)
        status, gpu_note = self._gpu_shortage(owner, spec, status, cluster, now)
        self._image_unavailable(owner, status, cluster)
        status = self._finish_status(
            spec, status, desired, cluster, resolution, now, generation, gpu_note
        )
        self._announce_phase(owner, old_status, status)
        wrote = self._write_status(owner, written, status) or written != old_status
        self._settle_requests(owner, meta, desired, status, cluster, fulfilled, retry_problem)
        self.metrics.set_active(
            owner.namespace, owner.name, status.active_version, status.active_color
        )
        self.metrics.rejected_versions.labels(owner.namespace, owner.name).set(
            len(status.rejected_versions)
        )
        requeue = action.seconds if isinstance(action, d.Wait) else None
        return ReconcileResult(status, type(action).__name__, requeue, wrote)

    # ------------------------------------------------------------------ resolve

    def _resolve(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        status: TryOnModelStatus,
        tracking_uri: str,
        now: datetime,
    ) -> tuple[TryOnModelStatus, ResolvedModel | ModelResolutionError]:
        kind, value = spec.model.selector
        key = (tracking_uri, spec.model.registered_model, kind, value)
        result = self.cache.get(key)
        if result is None:
            try:
                result = self.registry.resolve(tracking_uri, spec.model)
            except ModelResolutionError as err:
                result = err
            self.cache.put(key, result)
        before = status.condition("ModelResolved")
        if isinstance(result, ModelResolutionError):
            if before is None or before.status != "False" or before.reason != result.reason:
                self._event(
                    owner,
                    "Warning",
                    "ModelResolutionFailed",
                    f"{spec.model.describe()}: {result.reason}: {result.message}",
                )
            return status, result
        selector = f"{kind} {value}"
        previous = status.model
        if before is not None and before.status == "False":
            self._event(
                owner,
                "Normal",
                "ModelResolutionRecovered",
                f"{spec.model.describe()} is version {result.version} again",
            )
        if (
            previous is not None
            and previous.version == result.version
            and previous.registered_model == spec.model.registered_model
            and previous.selector == selector
            and previous.run_id == result.run_id
            and previous.source == result.source
        ):
            return status, result
        rejected = status.rejected_versions
        if (
            previous is not None
            and previous.version != result.version
            and result.version in rejected
        ):
            # The selector moved onto this version again: that is the signal to retry it.
            rejected = tuple(v for v in rejected if v != result.version)
        if previous is None or previous.version != result.version:
            self._event(
                owner,
                "Normal",
                "ModelResolved",
                f"{spec.model.registered_model} {selector} is version {result.version}",
                version=result.version,
                previous_version=previous.version if previous is not None else None,
                evidence={"selector": selector, "runId": result.run_id, "source": result.source},
            )
        model = ResolvedModelStatus(
            registered_model=spec.model.registered_model,
            selector=selector,
            version=result.version,
            run_id=result.run_id,
            source=result.source,
            changed_at=now
            if previous is None or previous.version != result.version
            else previous.changed_at,
        )
        return status.model_copy(update={"model": model, "rejected_versions": rejected}), result

    def _desired(
        self,
        meta: Mapping[str, Any],
        spec: TryOnModelSpec,
        status: TryOnModelStatus,
        cluster: ClusterView,
        resolution: ResolvedModel | ModelResolutionError,
    ) -> d.Desired:
        replicas = spec.renderer.replicas
        if spec.autoscaling.enabled:
            active_replicas = (
                cluster.observed.color(status.active_color).replicas if status.active_color else 0
            )
            replicas = max(spec.autoscaling.min_replicas, active_replicas)
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        rollout = spec.rollout
        return d.Desired(
            version=resolution.version if isinstance(resolution, ResolvedModel) else None,
            template_hash=spec.renderer.template_hash(),
            replicas=replicas,
            paused=spec.paused,
            auto_promote=rollout.auto_promote,
            promote_requested_for=annotations.get(ANNOTATION_PROMOTE),
            rollback_requested_for=(annotations.get(ANNOTATION_ROLLBACK) or "").strip() or None,
            smoke_enabled=rollout.smoke_test.enabled,
            progress_deadline=timedelta(seconds=rollout.progress_deadline_seconds),
            scale_down_delay=timedelta(seconds=rollout.scale_down_delay_seconds),
            post_promotion=timedelta(seconds=rollout.post_promotion_seconds),
            gpu_shortage_policy=rollout.gpu_shortage_policy,
        )

    # ------------------------------------------------------------------ manual requests

    def _take_retry(
        self, meta: Mapping[str, Any], status: TryOnModelStatus
    ) -> tuple[TryOnModelStatus, str | None]:
        """Clears the rejection a ``tryon.dev/retry`` annotation names, before anything decides."""
        version = (meta.get("annotations") or {}).get(ANNOTATION_RETRY)
        if version is None:
            return status, None
        result = retry(version.strip(), status)
        return (status, result) if isinstance(result, str) else (result, None)

    def _settle_requests(
        self,
        owner: Owner,
        meta: Mapping[str, Any],
        desired: d.Desired,
        status: TryOnModelStatus,
        cluster: ClusterView,
        fulfilled: set[str],
        retry_problem: str | None,
    ) -> None:
        """Removes each request annotation that was carried out or can no longer apply.

        Runs after status is written, so a crash in between repeats nothing: a request that was
        already carried out then reads as inapplicable and is removed with a Warning.
        """
        annotations: Mapping[str, str] = meta.get("annotations") or {}
        for key in REQUEST_ANNOTATIONS:
            value = annotations.get(key)
            if value is None:
                continue
            problem: str | None = None
            if key == ANNOTATION_RETRY:
                problem = retry_problem
            elif key not in fulfilled:
                if desired.paused:
                    continue  # acted on once resumed
                if key == ANNOTATION_PROMOTE:
                    problem = promote_problem(value.strip(), desired.version, status)
                else:
                    answer = d.manual_rollback(value.strip(), status, cluster.observed)
                    problem = answer if isinstance(answer, str) else None
                if problem is None:
                    continue  # still applicable: waits for the rollout
            self.kube.remove_annotation(owner.namespace, owner.name, key)
            if problem is not None:
                self._event(owner, "Warning", EVENT_IGNORED, f"{key}={value} ignored: {problem}")
            elif key == ANNOTATION_RETRY:
                self._event(
                    owner,
                    "Normal",
                    EVENT_RETRY,
                    f"rejection of version {value} cleared on request; it is rolled out again "
                    "while the model selector resolves to it"
                    + (f" (now version {desired.version})" if desired.version else ""),
                    version=value,
                )

    # ------------------------------------------------------------------ actions

    def _execute(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        tracking_uri: str,
        status: TryOnModelStatus,
        action: d.Action,
        cluster: ClusterView,
        now: datetime,
    ) -> TryOnModelStatus:
        ns, name = owner.namespace, owner.name
        if isinstance(action, d.StartRollout):
            if action.superseded is not None:
                status = self._record(
                    status,
                    action.superseded,
                    "Superseded",
                    "Superseded",
                    f"replaced by version {action.version}",
                    now,
                )
                self.metrics.rollouts.labels(ns, name, "superseded").inc()
            self.kube.apply(
                build_deployment(
                    spec,
                    action.color,
                    action.version,
                    owner,
                    tracking_uri=tracking_uri,
                    replicas=action.replicas,
                )
            )
            seen = (
                status.model.changed_at
                if status.model and status.model.version == action.version
                else None
            ) or now
            rollout = RolloutState(
                phase="Progressing",
                color=action.color,
                version=action.version,
                template_hash=action.template_hash,
                replicas=action.replicas,
                started_at=now,
                seen_at=seen,
            )
            self.metrics.rollouts.labels(ns, name, "started").inc()
            self._event(
                owner,
                "Normal",
                "RolloutStarted",
                f"rolling out version {action.version} to {action.color} "
                f"({action.replicas} replica(s)); active is "
                f"{status.active_color or 'none'} (version {status.active_version or '-'})",
                version=action.version,
                color=action.color,
                previous_version=status.active_version,
                previous_color=status.active_color,
                evidence={
                    "replicas": action.replicas,
                    "templateHash": action.template_hash,
                    "supersedes": action.superseded.version if action.superseded else None,
                },
            )
            return status.model_copy(
                update={
                    "rollout": rollout,
                    "preview_color": action.color,
                    "preview_version": action.version,
                }
            )
        if isinstance(action, d.CancelRollout):
            rollout = _must(status.rollout)
            self.kube.scale(ns, deployment_name(name, rollout.color), 0)
            self.metrics.rollouts.labels(ns, name, "cancelled").inc()
            self._event(
                owner,
                "Normal",
                "RolloutCancelled",
                f"rollout of version {rollout.version} cancelled: {action.reason}",
                version=rollout.version,
                color=rollout.color,
                evidence={"scaledTo": 0},
            )
            status = self._record(status, rollout, "Cancelled", "Cancelled", action.reason, now)
            return _without_rollout(status)
        if isinstance(action, d.Promote):
            return self._promote(owner, spec, tracking_uri, status, action, cluster, now)
        if isinstance(action, d.ShrinkPreview | d.MakeRoom):
            return self._ease_gpu_shortage(owner, spec, status, action, cluster)
        if isinstance(action, d.Abort):
            rollout = _must(status.rollout)
            self.kube.scale(ns, deployment_name(name, rollout.color), 0)
            status = self._reject(
                owner, spec, tracking_uri, status, rollout, action.reason, action.message, now
            )
            self._event(
                owner,
                "Warning",
                "RolledBack",
                f"version {rollout.version} on {rollout.color} rejected before promotion "
                f"({action.reason}): {action.message}; traffic stays on "
                f"{status.active_color or 'none'}",
                decision="reject",
                version=rollout.version,
                color=rollout.color,
                previous_version=status.active_version,
                previous_color=status.active_color,
                evidence=_evidence(cluster, rollout.color, action.message),
            )
            return _without_rollout(status)
        if isinstance(action, d.FlipBack):
            rollout = _must(status.rollout)
            previous: Color = _must(rollout.previous_color)
            # Apply (not patch) so a Service deleted at the worst moment comes back pointing right.
            self.kube.apply(build_service(spec, owner, color=previous, preview=False))
            self.kube.scale(ns, deployment_name(name, rollout.color), 0)
            status = status.model_copy(
                update={
                    "active_color": previous,
                    "active_version": rollout.previous_version,
                    "active_template_hash": rollout.previous_template_hash,
                    "active_renderer": rollout.previous_renderer,
                }
            )
            status = self._reject(
                owner, spec, tracking_uri, status, rollout, action.reason, action.message, now
            )
            self._event(
                owner,
                "Warning",
                "RolledBack",
                f"version {rollout.version} {_why_flipped_back(action.reason)}; "
                f"traffic flipped back to {previous} (version {rollout.previous_version})",
                decision="rollback",
                version=rollout.version,
                color=rollout.color,
                previous_version=rollout.previous_version,
                previous_color=previous,
                evidence=_evidence(cluster, rollout.color, action.message),
            )
            if rollout.previous_version is not None:
                status = self._tag(
                    status,
                    tracking_uri,
                    spec,
                    rollout.previous_version,
                    TAG_PROMOTED,
                    f"{ns}/{name} serving again on {previous} at {now.isoformat()} after "
                    f"version {rollout.version} was rolled back",
                )
            return _without_rollout(status)
        if isinstance(action, d.FinishRollout):
            rollout = _must(status.rollout)
            if rollout.previous_color is not None and rollout.previous_color != rollout.color:
                self.kube.scale(ns, deployment_name(name, rollout.previous_color), 0)
                self._event(
                    owner,
                    "Normal",
                    "ScaledDown",
                    f"previous colour {rollout.previous_color} (version "
                    f"{rollout.previous_version}) scaled to 0",
                    version=rollout.previous_version,
                    color=rollout.previous_color,
                    evidence={"scaledTo": 0},
                )
            status = self._record(
                status,
                rollout,
                "Promoted",
                "RolloutComplete",
                f"version {rollout.version} serves on {rollout.color}",
                now,
            )
            self._event(
                owner,
                "Normal",
                "RolloutComplete",
                f"version {rollout.version} serves on {rollout.color}",
                version=rollout.version,
                color=rollout.color,
                previous_version=rollout.previous_version,
                previous_color=rollout.previous_color,
            )
            return status.model_copy(update={"rollout": None})
        raise AssertionError(f"unhandled action {action!r}")  # pragma: no cover

    def _promote(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        tracking_uri: str,
        status: TryOnModelStatus,
        action: d.Promote,
        cluster: ClusterView,
        now: datetime,
    ) -> TryOnModelStatus:
        ns, name = owner.namespace, owner.name
        rollout = _must(status.rollout)
        if rollout.full_replicas is not None and rollout.full_replicas > rollout.replicas:
            self._grow_shrunk_preview(owner, status, rollout, cluster)
        # The Service may not exist yet on a first deploy; converge creates it with this colour.
        status_after = status.model_copy(
            update={
                "active_color": action.color,
                "active_version": rollout.version,
                "active_template_hash": rollout.template_hash,
                "active_renderer": _renderer_record(spec),
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
        self.kube.apply(build_service(spec, owner, color=action.color, preview=False))
        if spec.autoscaling.enabled:
            self.kube.apply(build_hpa(spec, owner, color=action.color))
        latency = (now - (rollout.seen_at or rollout.started_at)).total_seconds()
        self.metrics.promotion_latency.labels(ns, name).observe(max(latency, 0.0))
        self.metrics.rollouts.labels(ns, name, "promoted").inc()
        self._event(
            owner,
            "Normal",
            "Promoted",
            f"traffic flipped to {action.color} (version {rollout.version}) "
            f"{latency:.1f}s after the model change was seen; previous "
            f"{status.active_color or 'none'} (version {status.active_version or '-'}) "
            "kept warm",
            version=rollout.version,
            color=action.color,
            previous_version=status.active_version,
            previous_color=status.active_color,
            evidence={
                "latencySeconds": round(latency, 1),
                "smokePassed": rollout.smoke_passed,
                "selector": f"{LABEL_COLOR}={action.color}",
            },
        )
        status_after = self._tag(
            status_after,
            tracking_uri,
            spec,
            rollout.version,
            TAG_PROMOTED,
            f"{ns}/{name} promoted to {action.color} at {now.isoformat()}",
        )
        if status.active_version is not None and status.active_version != rollout.version:
            status_after = self._tag(
                status_after,
                tracking_uri,
                spec,
                status.active_version,
                TAG_STOPPED,
                f"{ns}/{name} stopped serving at {now.isoformat()}: replaced by version "
                f"{rollout.version} on {action.color}",
            )
        return status_after

    def _ease_gpu_shortage(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        status: TryOnModelStatus,
        action: d.ShrinkPreview | d.MakeRoom,
        cluster: ClusterView,
    ) -> TryOnModelStatus:
        """Carries out the spec's GPU-shortage policy; the rollout remembers what it changed."""
        status, _ = self._gpu_shortage(owner, spec, status, cluster, self.clock())  # told first
        rollout = _must(status.rollout)
        preview = cluster.observed.color(rollout.color)
        short = f"{preview.gpu_short_pods} of {rollout.replicas} preview pod(s) got no GPU"
        if isinstance(action, d.ShrinkPreview):
            name = deployment_name(owner.name, action.color)
            self.kube.scale(owner.namespace, name, action.replicas)
            self._event(
                owner,
                "Warning",
                "PreviewShrunk",
                f"{short}: preview {action.color} (version {rollout.version}) runs with "
                f"{action.replicas} pod(s) (gpuShortagePolicy ShrinkPreview); it grows to "
                f"{rollout.full_replicas or rollout.replicas} after the flip",
                version=rollout.version,
                color=action.color,
                evidence={"replicas": action.replicas, "gpuShortPods": preview.gpu_short_pods},
            )
            return _with_rollout(
                status,
                full_replicas=rollout.full_replicas or rollout.replicas,
                replicas=action.replicas,
            )
        active = cluster.observed.color(action.color)
        self.kube.scale(owner.namespace, deployment_name(owner.name, action.color), action.replicas)
        self._event(
            owner,
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
        return _with_rollout(status, room_made=action.room_made)

    def _grow_shrunk_preview(
        self,
        owner: Owner,
        status: TryOnModelStatus,
        rollout: RolloutState,
        cluster: ClusterView,
    ) -> None:
        """After a flip on a shrunk preview: grow it, and shrink the old colour as much."""
        full = _must(rollout.full_replicas)
        self.kube.scale(owner.namespace, deployment_name(owner.name, rollout.color), full)
        if status.active_color is not None:
            old = cluster.observed.color(status.active_color)
            keep = max(1, old.replicas - (full - rollout.replicas))
            if keep < old.replicas:
                self.kube.scale(
                    owner.namespace, deployment_name(owner.name, status.active_color), keep
                )
        self._event(
            owner,
            "Normal",
            "PreviewGrowing",
            f"{rollout.color} (version {rollout.version}) promoted with {rollout.replicas} "
            f"pod(s), growing to {full}",
            version=rollout.version,
            color=rollout.color,
        )

    def _await_promotion(self, owner: Owner, status: TryOnModelStatus) -> TryOnModelStatus:
        rollout = _must(status.rollout)
        if rollout.phase == "AwaitingPromotion":
            return status
        self._event(
            owner,
            "Normal",
            "AwaitingPromotion",
            f"version {rollout.version} on {rollout.color} is Ready and tested; "
            f"annotate {ANNOTATION_PROMOTE}={rollout.version} to promote",
            version=rollout.version,
            color=rollout.color,
        )
        return _with_rollout(status, phase="AwaitingPromotion", ready_at=self.clock())

    def _reject(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        tracking_uri: str,
        status: TryOnModelStatus,
        rollout: RolloutState,
        reason: str,
        message: str,
        now: datetime,
    ) -> TryOnModelStatus:
        self.metrics.rollouts.labels(owner.namespace, owner.name, "rolled_back").inc()
        status = self._record(status, rollout, "RolledBack", reason, message, now)
        if rollout.version == status.active_version:
            return status.model_copy(update={"rejected_template_hash": rollout.template_hash})
        rejected = tuple(v for v in status.rejected_versions if v != rollout.version)
        rejected = (*rejected, rollout.version)[-self.settings.rejected_limit :]
        status = status.model_copy(update={"rejected_versions": rejected})
        return self._tag(
            status,
            tracking_uri,
            spec,
            rollout.version,
            TAG_REJECTED,
            f"{owner.namespace}/{owner.name} at {now.isoformat()}: {reason}: {message}",
        )

    def _record(
        self,
        status: TryOnModelStatus,
        rollout: RolloutState,
        outcome: Outcome,
        reason: str,
        message: str,
        now: datetime,
    ) -> TryOnModelStatus:
        entry = HistoryEntry(
            version=rollout.version,
            color=rollout.color,
            outcome=outcome,
            reason=reason,
            message=message[:500],
            started_at=rollout.started_at,
            finished_at=now,
            promoted_at=rollout.promoted_at,
            previous_version=rollout.previous_version,
        )
        history = (*status.history, entry)[-self.settings.history_limit :]
        return status.model_copy(update={"history": history})

    def _tag(
        self,
        status: TryOnModelStatus,
        tracking_uri: str,
        spec: TryOnModelSpec,
        version: str,
        key: str,
        value: str,
    ) -> TryOnModelStatus:
        """Tags a model version; if MLflow is down the tag is owed in status and sent later."""
        owed = PendingTag(
            registered_model=spec.model.registered_model,
            version=version,
            key=key,
            value=value[:TAG_VALUE_LIMIT],
        )
        try:
            self.registry.set_version_tag(
                tracking_uri, spec.model.registered_model, version, key, owed.value
            )
        except RegistryError as err:
            log.warning("could not record %s on MLflow, will retry: %s", key, err)
            return _owe_tag(status, owed)
        return status

    def _pay_owed_tags(
        self, status: TryOnModelStatus, tracking_uri: str, spec: TryOnModelSpec
    ) -> TryOnModelStatus:
        """Sends tags owed from an outage, oldest first; stops at the first failure.

        A tag owed to a model the spec no longer names is dropped: this object no longer manages
        that model, and its tracking server may be another one.
        """
        model = spec.model.registered_model
        for gone in (t for t in status.pending_registry_tags if t.registered_model != model):
            log.warning(
                "dropping owed MLflow tag %s on %s v%s: the spec now names %s",
                gone.key,
                gone.registered_model,
                gone.version,
                model,
            )
        owed = [t for t in status.pending_registry_tags if t.registered_model == model]
        while owed:
            tag = owed[0]
            try:
                self.registry.set_version_tag(tracking_uri, model, tag.version, tag.key, tag.value)
            except RegistryError as err:
                log.warning(
                    "owed MLflow tag %s on version %s still not sent: %s", tag.key, tag.version, err
                )
                break
            log.info("sent owed MLflow tag %s on version %s", tag.key, tag.version)
            owed.pop(0)
        return status.model_copy(update={"pending_registry_tags": tuple(owed)})

    # ------------------------------------------------------------------ converge

    def _converge(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        tracking_uri: str,
        status: TryOnModelStatus,
        cluster: ClusterView,
    ) -> TryOnModelStatus:
        """Self-heal: make the children match status; writes only what differs."""
        if spec.paused:
            return status
        ns, name = owner.namespace, owner.name
        obs = cluster.observed
        active = status.active_color
        rollout = status.rollout
        spec_hash = spec.renderer.template_hash()
        active_version = status.active_version
        if active is not None and active_version is not None:
            status = _backfill_active_renderer(spec, status)
            active_spec = _active_spec(spec, status)
            view = obs.color(active)
            replicas = spec.renderer.replicas
            if spec.autoscaling.enabled:
                replicas = max(spec.autoscaling.min_replicas, view.replicas)
            elif rollout is not None and rollout.phase != "PostPromotion" and rollout.room_made:
                replicas = max(replicas - rollout.room_made, 0)  # room given to the preview
            if not view.exists or view.version != active_version:
                self.kube.apply(
                    build_deployment(
                        active_spec,
                        active,
                        active_version,
                        owner,
                        tracking_uri=tracking_uri,
                        replicas=replicas,
                    )
                )
                status = status.model_copy(
                    update={"active_template_hash": active_spec.renderer.template_hash()}
                )
                self._heal(
                    owner,
                    f"Deployment {deployment_name(name, active)} recreated "
                    f"(version {active_version})",
                )
            elif (
                view.foreign_template_managers
                and view.template_hash == active_spec.renderer.template_hash()
            ):
                self._restore_template(
                    owner,
                    active_spec,
                    tracking_uri,
                    active,
                    active_version,
                    view,
                    replicas,
                )
            elif not spec.autoscaling.enabled and view.replicas != replicas:
                self.kube.scale(ns, deployment_name(name, active), replicas)
                self._heal(
                    owner,
                    f"Deployment {deployment_name(name, active)} scaled back "
                    f"from {view.replicas} to {replicas} replicas",
                )
        if (
            rollout is not None
            and rollout.phase != "PostPromotion"
            and rollout.template_hash == spec_hash
        ):
            view = obs.color(rollout.color)
            if view.exists and view.foreign_template_managers:
                self._restore_template(
                    owner,
                    spec,
                    tracking_uri,
                    rollout.color,
                    rollout.version,
                    view,
                    rollout.replicas,
                )
            elif (
                not view.exists
                or view.version != rollout.version
                or view.template_hash != rollout.template_hash
                or view.replicas != rollout.replicas
            ):
                self.kube.apply(
                    build_deployment(
                        spec,
                        rollout.color,
                        rollout.version,
                        owner,
                        tracking_uri=tracking_uri,
                        replicas=rollout.replicas,
                    )
                )
        busy: set[Color] = {c for c in (active,) if c is not None}
        if rollout is not None:
            busy.add(rollout.color)
            if rollout.phase == "PostPromotion" and rollout.previous_color is not None:
                busy.add(rollout.previous_color)
        for color in COLORS:
            view = obs.color(color)
            if color not in busy and view.exists and view.replicas > 0:
                self.kube.scale(ns, deployment_name(name, color), 0)
        self._converge_service(owner, spec, cluster.active_service, active, preview=False)
        preview_color: Color = status.preview_color or (other_color(active) if active else "blue")
        self._converge_service(owner, spec, cluster.preview_service, preview_color, preview=True)
        if spec.autoscaling.enabled and active is not None:
            hpa = cluster.hpa
            if (
                not hpa.exists
                or hpa.target != deployment_name(name, active)
                or hpa.min_replicas != spec.autoscaling.min_replicas
                or hpa.max_replicas != spec.autoscaling.max_replicas
            ):
                self.kube.apply(build_hpa(spec, owner, color=active))
        elif cluster.hpa.exists and not spec.autoscaling.enabled:
            self.kube.delete_hpa(ns, name)
        return status

    def _restore_template(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        tracking_uri: str,
        color: Color,
        version: str,
        view: d.ColorView,
        replicas: int,
    ) -> None:
        wanted = build_deployment(
            spec, color, version, owner, tracking_uri=tracking_uri, replicas=replicas
        )
        self.kube.restore_template(wanted)
        self._heal(
            owner,
            f"Deployment {deployment_name(owner.name, color)} pod template was edited by "
            f"{', '.join(view.foreign_template_managers)}; restored to version {version}",
        )

    def _converge_service(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        view: ServiceView,
        color: Color | None,
        *,
        preview: bool,
    ) -> None:
        wanted = build_service(spec, owner, color=color, preview=preview)
        name = wanted["metadata"]["name"]
        ports = ((spec.service.port, "http"),)
        if not view.exists or view.ports != ports:
            self.kube.apply(wanted)
            if view.exists:
                self._heal(owner, f"Service {name} ports restored")
            return
        selector = selector_labels(owner.name, color)
        if view.selector != selector:
            self.kube.set_selector_color(owner.namespace, name, selector[LABEL_COLOR])
            if not preview:  # the preview selector follows each rollout; that is no repair
                self._heal(
                    owner,
                    f"Service {name} selector restored to {LABEL_COLOR}={selector[LABEL_COLOR]}",
                )

    def _heal(self, owner: Owner, message: str) -> None:
        log.info("self-heal %s/%s: %s", owner.namespace, owner.name, message)
        self._event(owner, "Warning", "SelfHealed", message)

    # ------------------------------------------------------------------ status

    def _finish_status(
        self,
        spec: TryOnModelSpec,
        status: TryOnModelStatus,
        desired: d.Desired,
        cluster: ClusterView,
        resolution: ResolvedModel | ModelResolutionError,
        now: datetime,
        generation: int | None,
        gpu_note: str | None = None,
    ) -> TryOnModelStatus:
        conds = status.conditions
        if isinstance(resolution, ResolvedModel):
            conds = set_condition(
                conds,
                "ModelResolved",
                True,
                "Resolved",
                f"{spec.model.describe()} is version {resolution.version}",
                now,
                generation,
            )
        else:
            old = status.condition("ModelResolved")
            conds = set_condition(
                conds,
                "ModelResolved",
                False,
                resolution.reason,
                resolution.message,
                now,
                generation,
            )
            if old is None or old.status != "False" or old.reason != resolution.reason:
                log.warning("model resolution failed: %s", resolution.message)
        rollout = status.rollout
        if rollout is None:
            conds = set_condition(
                conds,
                "Progressing",
                False,
                "RolloutComplete" if status.active_color else "NoRollout",
                f"version {status.active_version} serves on {status.active_color}"
                if status.active_color
                else "nothing is serving yet",
                now,
                generation,
            )
        else:
            reason = {
                "Progressing": "RolloutInProgress",
                "AwaitingPromotion": "AwaitingPromotion",
                "PostPromotion": "PostPromotion",
            }[rollout.phase]
            message = f"version {rollout.version} on {rollout.color}"
            preview = cluster.observed.color(rollout.color)
            if rollout.phase == "Progressing" and preview.image_unavailable_pods:
                # Before unschedulable: pods that got a node but no image would not start anyway.
                reason = "PreviewImageUnavailable"
                message += f": {_image_problem(preview)}"
            elif rollout.phase == "Progressing" and preview.unschedulable_pods:
                # Say so within seconds instead of hanging quietly until the deadline.
                reason = "PreviewUnschedulable"
                message += (
                    f": {preview.unschedulable_pods} pod(s) cannot be scheduled: "
                    f"{gpu_note or preview.unschedulable_message}"
                )
            conds = set_condition(conds, "Progressing", True, reason, message, now, generation)
        degraded = degraded_reason(status, desired.version, desired.template_hash, cluster.observed)
        if degraded is None:
            conds = set_condition(conds, "Degraded", False, "AsExpected", "", now, generation)
        else:
            conds = set_condition(
                conds, "Degraded", True, degraded[0], degraded[1], now, generation
            )
        if status.active_color is None:
            conds = set_condition(
                conds,
                "Ready",
                False,
                "NoActiveColor",
                "no colour has been promoted yet",
                now,
                generation,
            )
        else:
            view = cluster.observed.color(status.active_color)
            ready = view.exists and view.replicas > 0 and view.ready_replicas >= view.replicas
            conds = set_condition(
                conds,
                "Ready",
                ready,
                "ActiveReady" if ready else "ActiveNotReady",
                f"version {status.active_version} on {status.active_color}: "
                f"{view.ready_replicas}/{view.replicas} pods Ready",
                now,
                generation,
            )
        status = status.model_copy(update={"conditions": conds, "observed_generation": generation})
        return status.model_copy(update={"phase": derive_phase(status, spec.paused)})

    def _gpu_shortage(
        self,
        owner: Owner,
        spec: TryOnModelSpec,
        status: TryOnModelStatus,
        cluster: ClusterView,
        now: datetime,
    ) -> tuple[TryOnModelStatus, str | None]:
        """Puts numbers on a preview short of GPUs, and says so once per rollout as an Event."""
        rollout = status.rollout
        if rollout is None or rollout.phase != "Progressing":
            return status, None
        preview = cluster.observed.color(rollout.color)
        if not preview.gpu_short_pods:
            return status, None
        note = self._gpu_shortage_note(spec, rollout, preview, now)
        if rollout.gpu_shortage_reported:
            return status, note
        self._event(
            owner,
            "Warning",
            "GPUShortage",
            note,
            version=rollout.version,
            color=rollout.color,
            evidence={
                "gpuShortPods": preview.gpu_short_pods,
                "scheduler": preview.unschedulable_message,
            },
        )
        return _with_rollout(status, gpu_shortage_reported=True), note

    def _gpu_shortage_note(
        self, spec: TryOnModelSpec, rollout: RolloutState, preview: d.ColorView, now: datetime
    ) -> str:
        resources = spec.renderer.resources
        per_pod = _int_quantity(resources.limits.get(GPU, resources.requests.get(GPU, 0)))
        capacity = self._gpu_capacity.get(
            tuple(sorted(spec.renderer.node_selector.items())),
            lambda: self._read_gpu_capacity(dict(spec.renderer.node_selector)),
        )
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

    def _image_unavailable(
        self, owner: Owner, status: TryOnModelStatus, cluster: ClusterView
    ) -> None:
        """One Warning Event when preview pods are first seen unable to get their image.

        The Progressing condition is the memory: once it names the problem for this rollout it is
        written to status, so later looks (and a restarted operator) do not tell it again.
        """
        rollout = status.rollout
        if rollout is None or rollout.phase != "Progressing":
            return
        preview = cluster.observed.color(rollout.color)
        if not preview.image_unavailable_pods:
            return
        told = status.condition("Progressing")
        label = f"version {rollout.version} on {rollout.color}:"
        if told and told.reason == "PreviewImageUnavailable" and told.message.startswith(label):
            return
        self._event(
            owner,
            "Warning",
            "ImageUnavailable",
            f"{label} {_image_problem(preview)}",
            version=rollout.version,
            color=rollout.color,
            evidence={
                "imageUnavailablePods": preview.image_unavailable_pods,
                "kubelet": preview.image_unavailable_message,
            },
        )

    def _read_gpu_capacity(self, node_selector: dict[str, str]) -> GpuCapacity | None:
        try:
            return self.kube.gpu_capacity(node_selector)
        except KubeError as err:
            log.warning("could not read GPU capacity: %s", err)
            return None

    def _invalid_status(
        self, status: TryOnModelStatus, message: str, now: datetime, generation: int | None
    ) -> TryOnModelStatus:
        conds = set_condition(
            status.conditions, "Degraded", True, "InvalidSpecError", message, now, generation
        )
        return status.model_copy(
            update={"conditions": conds, "observed_generation": generation, "phase": "Degraded"}
        )

    def _write_status(self, owner: Owner, old: TryOnModelStatus, new: TryOnModelStatus) -> bool:
        if new == old:
            return False
        self.kube.patch_status(owner.namespace, owner.name, new.to_patch())
        return True

    def _event(self, owner: Owner, type_: str, reason: str, message: str, **audit: Any) -> None:
        """Every decision passes here: Event, audit line, notification (``audit``: its facts)."""
        log.info("%s/%s %s: %s", owner.namespace, owner.name, reason, message)
        try:
            self.kube.emit_event(owner, type_, reason, message)
        except Exception as err:  # an event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", reason, err)
        self.announcer.decision(owner, type_, reason, message, **audit)

    def _announce_phase(self, owner: Owner, old: TryOnModelStatus, new: TryOnModelStatus) -> None:
        """Degraded and recovered are told once, on the transition."""
        if new.phase == "Degraded" and old.phase != "Degraded":
            cond = new.condition("Degraded")
            reason = cond.reason if cond is not None else "Degraded"
            detail = cond.message if cond is not None else ""
            self._event(
                owner,
                "Warning",
                "Degraded",
                f"{reason}: {detail}" if detail else reason,
                decision="degrade",
                version=new.model.version if new.model else None,
                color=new.active_color,
                previous_version=new.active_version,
                evidence={"condition": reason},
            )
        elif old.phase == "Degraded" and new.phase == "Healthy":
            self._event(
                owner,
                "Normal",
                "Recovered",
                f"version {new.active_version} serves on {new.active_color}",
                decision="recover",
                version=new.active_version,
                color=new.active_color,
            )


class _Recent(Generic[_T]):
    """Answers read within the last ``ttl`` seconds, shared by all reconciles (thread-safe).

    For GPU capacity, which only goes into messages: a wave of previews short of GPUs would
    otherwise list every pod in the cluster once per object and reconcile.
    """

    def __init__(self, ttl: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._monotonic = monotonic
        self._answers: dict[Hashable, tuple[float, _T]] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, read: Callable[[], _T]) -> _T:
        now = self._monotonic()
        with self._guard:
            hit = self._answers.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        answer = read()
        with self._guard:
            self._answers[key] = (now, answer)
        return answer


def _owe_tag(status: TryOnModelStatus, tag: PendingTag) -> TryOnModelStatus:
    """Adds a tag to the owed list; a newer value for the same version and key replaces it."""
    kept = tuple(
        t for t in status.pending_registry_tags if (t.version, t.key) != (tag.version, tag.key)
    )
    owed = (*kept, tag)[-OWED_TAGS_LIMIT:]
    return status.model_copy(update={"pending_registry_tags": owed})


def _with_rollout(status: TryOnModelStatus, **changes: Any) -> TryOnModelStatus:
    rollout = _must(status.rollout)
    return status.model_copy(update={"rollout": rollout.model_copy(update=changes)})


def _without_rollout(status: TryOnModelStatus) -> TryOnModelStatus:
    """The status once a rollout has ended, whichever way: no rollout, no preview."""
    return status.model_copy(
        update={"rollout": None, "preview_color": None, "preview_version": None}
    )


def _must(value: _T | None) -> _T:
    assert value is not None
    return value


def _renderer_record(spec: TryOnModelSpec) -> str:
    return json.dumps(
        spec.renderer.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )


def _backfill_active_renderer(spec: TryOnModelSpec, status: TryOnModelStatus) -> TryOnModelStatus:
    """Status from before ``activeRenderer``: the spec is the record when the hashes agree."""
    current = spec.renderer.template_hash()
    if status.active_renderer is None and status.active_template_hash == current:
        return status.model_copy(update={"active_renderer": _renderer_record(spec)})
    return status


def _active_spec(spec: TryOnModelSpec, status: TryOnModelStatus) -> TryOnModelSpec:
    """The spec as the active colour was promoted: a newer renderer has not passed a rollout yet.

    Without a usable record (status from an older operator and a spec changed since), the spec
    itself is all there is.
    """
    if status.active_renderer is None:
        return spec
    try:
        renderer = RendererSpec.model_validate_json(status.active_renderer)
    except ValidationError:
        log.warning("status.activeRenderer is unreadable; rebuilding from the spec")
        return spec
    return spec.model_copy(update={"renderer": renderer})


def _why_flipped_back(reason: str) -> str:
    if reason == "ManualRollback":
        return "was rolled back by request after promotion (ManualRollback)"
    return f"failed after promotion ({reason})"


def _image_problem(view: d.ColorView) -> str:
    return f"{view.image_unavailable_pods} pod(s) cannot start: {view.image_unavailable_message}"


def _int_quantity(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"spec.{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def _evidence(cluster: ClusterView, color: Color, detail: str) -> dict[str, Any]:
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
