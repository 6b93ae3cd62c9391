"""The values one reconcile passes around: who and what (``ReconcileContext``), the side effects
it may cause (``Effects``), and the state one action runs against (``Step``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..api.builders import Owner
from ..api.models import TryOnModelSpec, TryOnModelStatus
from ..gateways.ports import KubePort, RegistryPort, SignalPort, SmokePort
from ..metrics import Metrics
from ..observe.views import ClusterView, GpuCapacity
from ..settings import OperatorSettings
from .events import EventSink, Told
from .scale_memory import ScaleMemory


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
class Step:
    """What one action runs against: the status so far and the cluster as last seen."""

    ctx: ReconcileContext
    fx: Effects
    status: TryOnModelStatus
    cluster: ClusterView
    now: datetime

    def tell(self, told: Told) -> None:
        """Tells a decision; one taken within a rollout is keyed by it, so a redo is not told."""
        rollout = self.status.rollout
        key = None
        if rollout is not None:
            key = f"{told.reason}/{told.version}/{rollout.version}/{rollout.started_at.isoformat()}"
        self.fx.events.tell(self.ctx.owner, told, key)
