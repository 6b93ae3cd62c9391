"""The values one reconcile passes around: who and what (``ReconcileContext``), the side effects
it may cause (``Effects``), what a pure step plans from (``Facts``: no effects) and the state one
action runs against (``Step``: facts and effects)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypedDict, TypeVar, Unpack

from ..api.builders import Owner, deployment_name
from ..api.models import (
    Color,
    HistoryEntry,
    Outcome,
    RolloutPhase,
    RolloutState,
    TryOnModelSpec,
    TryOnModelStatus,
)
from ..api.vocabulary import AuditVerb, EventReason, EventType
from ..gateways.ports import KubePort, RegistryPort, SignalPort, SmokePort
from ..metrics import Metrics
from ..observe.views import ClusterView, GpuCapacity
from ..settings import OperatorSettings
from .events import EventSink, Told
from .scale_memory import ScaleMemory

_T = TypeVar("_T")
# tryon_rollouts_total's outcome label
Counted = Literal["started", "promoted", "rolled_back", "superseded", "cancelled"]


@dataclass(frozen=True)
class ReconcileContext:
    """The TryOnModel being reconciled, as read at the start of this reconcile."""

    owner: Owner
    spec: TryOnModelSpec
    tracking_uri: str
    annotations: Mapping[str, str]
    generation: int | None

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def name(self) -> str:
        return self.owner.name


@dataclass(frozen=True)
class Effects:
    """Everything a reconcile can change or measure; one per Reconciler, shared by its threads."""

    kube: KubePort
    registry: RegistryPort
    smoke: SmokePort
    events: EventSink
    metrics: Metrics
    settings: OperatorSettings
    clock: Callable[[], datetime]
    capacity: Callable[[dict[str, str]], GpuCapacity | None]  # GPUs by node selector, cached
    signals: SignalPort  # Prometheus, for the operator's own scaling loop
    scale_memory: ScaleMemory
    monotonic: Callable[[], float]


@dataclass(frozen=True)
class Facts:
    """What a pure step plans from: no ports in here, so mypy rejects I/O in a ``plan()``."""

    ctx: ReconcileContext
    status: TryOnModelStatus
    cluster: ClusterView
    now: datetime


@dataclass(frozen=True)
class Step:
    """What one action runs against: the status so far and the cluster as last seen."""

    ctx: ReconcileContext
    fx: Effects
    status: TryOnModelStatus
    cluster: ClusterView
    now: datetime

    @property
    def facts(self) -> Facts:
        return Facts(self.ctx, self.status, self.cluster, self.now)

    def tell(self, told: Told) -> None:
        """Tells a decision; one taken within a rollout is keyed by it, so a redo is not told."""
        rollout = self.status.rollout
        key = None
        if rollout is not None:
            key = f"{told.reason}/{told.version}/{rollout.version}/{rollout.started_at.isoformat()}"
        self.fx.events.tell(self.ctx.owner, told, key)

    def about(
        self,
        type_: EventType,
        reason: EventReason,
        message: str,
        *,
        previous: bool = False,
        decision: AuditVerb | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> Told:
        """A decision about the rollout under way, with its version and colour; ``previous``
        adds what served before it (the active colour until the flip, then the one it
        replaced)."""
        rollout = must(self.status.rollout)
        served: tuple[str | None, Color | None] = (None, None)
        if previous and rollout.phase == "PostPromotion":
            served = (rollout.previous_version, rollout.previous_color)
        elif previous:
            served = (self.status.active_version, self.status.active_color)
        return Told(
            type_,
            reason,
            message,
            decision=decision,
            version=rollout.version,
            color=rollout.color,
            previous_version=served[0],
            previous_color=served[1],
            evidence=evidence or {},
        )

    def scale(self, color: Color, replicas: int) -> None:
        """Sets the replica count of ``color``'s Deployment."""
        self.fx.kube.scale(self.ctx.namespace, deployment_name(self.ctx.name, color), replicas)

    def count(self, outcome: Counted) -> None:
        """Counts a rollout's start or end in ``tryon_rollouts_total``."""
        self.fx.metrics.rollouts.labels(self.ctx.namespace, self.ctx.name, outcome).inc()

    def record(
        self, rollout: RolloutState, outcome: Outcome, reason: str, message: str
    ) -> TryOnModelStatus:
        """The status with how ``rollout`` ended appended to its history (the last
        ``history_limit`` are kept)."""
        entry = HistoryEntry(
            version=rollout.version,
            color=rollout.color,
            outcome=outcome,
            reason=reason,
            message=message[:500],
            started_at=rollout.started_at,
            finished_at=self.now,
            promoted_at=rollout.promoted_at,
            previous_version=rollout.previous_version,
        )
        history = (*self.status.history, entry)[-self.fx.settings.history_limit :]
        return self.status.model_copy(update={"history": history})


class RolloutChanges(TypedDict, total=False):
    """The fields of a rollout under way that change while it runs; the rest are set when it
    starts or at the flip."""

    phase: RolloutPhase
    replicas: int
    ready_at: datetime | None
    smoke_passed: bool
    full_replicas: int | None
    room_made: int
    gpu_shortage_reported: bool
    pods_refused_reported: bool
    progress_since: datetime | None
    standby_replicas: int | None
    standby_serving_replicas: int | None


def with_rollout(status: TryOnModelStatus, **changes: Unpack[RolloutChanges]) -> TryOnModelStatus:
    """The status with the rollout under way changed as named."""
    rollout = must(status.rollout)
    return status.model_copy(update={"rollout": rollout.model_copy(update=dict(changes))})


def without_rollout(status: TryOnModelStatus) -> TryOnModelStatus:
    """The status once a rollout has ended, whichever way: no rollout, no preview."""
    return status.model_copy(
        update={"rollout": None, "preview_color": None, "preview_version": None}
    )


def must(value: _T | None) -> _T:
    assert value is not None
    return value
