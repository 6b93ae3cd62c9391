"""The TryOnModel contract as frozen pydantic models (spec) and plain models (status).

Field names and defaults mirror ``crds/tryonmodel.yaml``; a test proves the two agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from .podtemplate import operator_owned_errors, schema_errors
from .vocabulary import API_VERSION as API_VERSION
from .vocabulary import GROUP as GROUP
from .vocabulary import KIND as KIND
from .vocabulary import PLURAL as PLURAL
from .vocabulary import PROTECTED_LABEL_PREFIXES
from .vocabulary import VERSION as VERSION

Color = Literal["blue", "green"]
COLORS: tuple[Color, Color] = ("blue", "green")
DEFAULT_ALIAS = "production"

_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def other_color(color: Color) -> Color:
    return "green" if color == "blue" else "blue"


class _Spec(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class ModelRef(_Spec):
    registered_model: Annotated[str, Field(min_length=1, max_length=256)]
    alias: Annotated[str | None, Field(min_length=1, max_length=255, pattern=_ALIAS_RE.pattern)] = (
        None
    )
    stage: Literal["Staging", "Production", "Archived"] | None = None
    version: Annotated[str | None, Field(pattern=r"^[1-9][0-9]{0,9}$")] = None

    @model_validator(mode="after")
    def _at_most_one_selector(self) -> ModelRef:
        chosen = [x for x in (self.alias, self.stage, self.version) if x is not None]
        if len(chosen) > 1:
            raise ValueError("at most one of alias, stage, version may be set")
        return self

    @property
    def selector(self) -> tuple[Literal["alias", "stage", "version"], str]:
        """Which registry pointer to follow; none given means the alias ``production``."""
        if self.version is not None:
            return ("version", self.version)
        if self.stage is not None:
            return ("stage", self.stage)
        return ("alias", self.alias or DEFAULT_ALIAS)

    def describe(self) -> str:
        kind, value = self.selector
        return f"{self.registered_model} {kind} {value}"


class MlflowRef(_Spec):
    tracking_uri: Annotated[str | None, Field(min_length=1)] = None


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class EnvVar(_Spec):
    name: Annotated[str, Field(min_length=1)]
    value: str | None = None
    value_from: dict[str, Any] | None = None


Quantity = str | int


class Resources(_Spec):
    limits: dict[str, Quantity] = Field(default_factory=dict)
    requests: dict[str, Quantity] = Field(default_factory=dict)


def _default_resources() -> Resources:
    return Resources(limits={"nvidia.com/gpu": 1})


class PodTemplateMetadata(_Spec):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class PodTemplate(_Spec):
    """A partial pod template merged over the renderer pod the operator builds (podtemplate.py)."""

    metadata: PodTemplateMetadata = Field(default_factory=PodTemplateMetadata)
    spec: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _a_pod_spec_without_the_operators_parts(self) -> PodTemplate:
        errors = [f"podTemplate.{e}" for e in schema_errors(self.spec)]
        errors += operator_owned_errors(self.model_dump(by_alias=True))
        if errors:
            raise ValueError("; ".join(errors[:5]))
        return self


class RendererSpec(_Spec):
    image: Annotated[str, Field(min_length=1)]
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    resources: Resources = Field(default_factory=_default_resources)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    env: tuple[EnvVar, ...] = ()
    pod_labels: dict[str, str] = Field(default_factory=dict)
    pod_annotations: dict[str, str] = Field(default_factory=dict)
    service_account_name: str | None = None
    startup_timeout_seconds: Annotated[int, Field(ge=10, le=7200)] = 900
    pod_template: PodTemplate | None = None

    @model_validator(mode="after")
    def _labels_not_reserved(self) -> RendererSpec:
        reserved = [k for k in self.pod_labels if k.startswith(PROTECTED_LABEL_PREFIXES)]
        if reserved:
            raise ValueError(f"podLabels may not set operator-owned labels: {', '.join(reserved)}")
        return self

    def template_hash(self) -> str:
        """Fingerprint of everything that shapes a pod, except the replica count."""
        data = self.model_dump(mode="json", by_alias=True, exclude={"replicas"})
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:10]


class ServiceSpec(_Spec):
    port: Annotated[int, Field(ge=1, le=65535)] = 80


class SmokeTestSpec(_Spec):
    enabled: bool = True
    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 60


GpuShortagePolicy = Literal["Wait", "ShrinkPreview", "InPlace"]


class RolloutSpec(_Spec):
    auto_promote: bool = True
    progress_deadline_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86400)] = 300
    post_promotion_seconds: Annotated[int, Field(ge=0, le=86400)] = 120
    smoke_test: SmokeTestSpec = Field(default_factory=SmokeTestSpec)
    gpu_shortage_policy: GpuShortagePolicy = "Wait"
    # None: the previous colour keeps all its pods for the rollback window (the default).
    warm_standby_replicas: Annotated[int | None, Field(ge=0, le=64)] = None

    @property
    def rollback_window_seconds(self) -> int:
        """How long after the flip the previous colour stays for an instant flip back (the
        decision's ``Desired.rollback_window`` is built from the same two settings)."""
        return max(self.post_promotion_seconds, self.scale_down_delay_seconds)


ScaleMetric = Literal["inFlight", "queueDepth", "cpu"]
# Per-pod averages the serving signals aim at when spec.autoscaling.target is not set: a renderer
# batches a few requests at a time, so 2 in flight keeps a batch forming without a queue.
DEFAULT_TARGETS: dict[str, float] = {"inFlight": 2.0, "queueDepth": 4.0}


class AutoscalingSpec(_Spec):
    enabled: bool = False
    metric: ScaleMetric = "cpu"
    target: Annotated[float, Field(ge=0.001, le=10000)] | None = None
    min_replicas: Annotated[int, Field(ge=1, le=64)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=64)] = 4
    target_cpu_utilization_percentage: Annotated[
        int, Field(ge=1, le=100, alias="targetCPUUtilizationPercentage")
    ] = 80
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    prometheus_address: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] | None = None

    def per_pod_target(self) -> float:
        """The per-pod average the scaler holds the metric at (CPU: percent of the request)."""
        if self.target is not None:
            return self.target
        if self.metric == "cpu":
            return float(self.target_cpu_utilization_percentage)
        return DEFAULT_TARGETS[self.metric]

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class TryOnModelSpec(_Spec):
    model: ModelRef
    mlflow: MlflowRef = Field(default_factory=MlflowRef)
    renderer: RendererSpec
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    paused: bool = False


# ---------------------------------------------------------------- status


class _Status(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True
    )


ConditionType = Literal["Ready", "Progressing", "Degraded", "ModelResolved"]
Phase = Literal["Pending", "Progressing", "Healthy", "Degraded", "Paused"]


class Condition(_Status):
    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime | None = None
    observed_generation: int | None = None


class ResolvedModelStatus(_Status):
    registered_model: str
    selector: str
    version: str
    run_id: str | None = None
    source: str | None = None
    changed_at: datetime | None = None


RolloutPhase = Literal["Progressing", "AwaitingPromotion", "PostPromotion"]


class RolloutState(_Status):
    """An in-flight rollout, persisted in status so a restarted operator resumes it."""

    phase: RolloutPhase
    color: Color
    version: str
    template_hash: str
    replicas: int
    started_at: datetime
    seen_at: datetime | None = None
    ready_at: datetime | None = None
    smoke_passed: bool = False
    promoted_at: datetime | None = None
    previous_color: Color | None = None
    previous_version: str | None = None
    previous_template_hash: str | None = None
    previous_renderer: str | None = None  # JSON, see active_renderer
    # GPU shortage: the size the new colour grows to after the flip (ShrinkPreview) and how many
    # active pods were given up to make room for the preview (InPlace).
    full_replicas: int | None = None
    room_made: int = 0
    gpu_shortage_reported: bool = False
    # The API refused the preview's pods (PodsRefused): told once; the progress deadline counts
    # again from ``progress_since`` once the refusal is gone (a quota raised, a namespace
    # relabelled), so the time spent refused does not count against the model version.
    pods_refused_reported: bool = False
    progress_since: datetime | None = None
    # Warm standby (spec.rollout.warmStandbyReplicas): the pods the previous colour was shrunk to
    # after the flip, and the serving size it grows back to if traffic flips back.
    standby_replicas: int | None = None
    standby_serving_replicas: int | None = None


Outcome = Literal["Promoted", "RolledBack", "Superseded", "Cancelled"]


class HistoryEntry(_Status):
    version: str
    color: Color
    outcome: Outcome
    reason: str
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime
    promoted_at: datetime | None = None  # when traffic flipped to it (if it ever did)
    previous_version: str | None = None  # what served before


class PendingTag(_Status):
    """An MLflow model-version tag the operator owes the registry (it was down when decided)."""

    registered_model: str
    version: str
    key: str
    value: str


class AutoscalingStatus(_Status):
    """Which scaler sizes the active colour, on what, and why none does when one was asked for."""

    # TryOnModel: the operator's own loop on Prometheus, where KEDA is not installed
    scaler: Literal["HorizontalPodAutoscaler", "ScaledObject", "TryOnModel"] | None = None
    metric: ScaleMetric = "cpu"
    target: float | None = None
    scale_target: str | None = None  # the Deployment it sizes
    current_replicas: int | None = None  # its Ready pods
    desired_replicas: int | None = None  # what the scaler asks of it (its spec.replicas)
    applied: str | None = None  # hash of the ScaledObject last applied (it is not watched)
    message: str = ""


class TryOnModelStatus(_Status):
    observed_generation: int | None = None
    phase: Phase = "Pending"
    active_color: Color | None = None
    active_version: str | None = None
    active_template_hash: str | None = None
    # The renderer spec that was promoted, as a JSON string: status is written with a merge patch,
    # which would merge an object field key by key and never drop a key the new spec lacks.
    active_renderer: str | None = None
    preview_color: Color | None = None
    preview_version: str | None = None
    rejected_versions: tuple[str, ...] = ()
    rejected_template_hash: str | None = None
    conditions: tuple[Condition, ...] = ()
    model: ResolvedModelStatus | None = None
    rollout: RolloutState | None = None
    history: tuple[HistoryEntry, ...] = ()
    pending_registry_tags: tuple[PendingTag, ...] = ()
    autoscaling: AutoscalingStatus | None = None

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    # A rolled-back rollout is not tried again until the model selector moves off and back onto
    # its version, or a person clears the rejection: a failing version would otherwise be
    # rolled out, fail and roll back forever. A new version is rejected by its number; a new pod
    # template of the version that serves, by its template hash.

    def is_rejected(self, version: str, template_hash: str) -> bool:
        """Whether a rollout of ``version`` with ``template_hash`` was rolled back."""
        if version == self.active_version:
            return template_hash == self.rejected_template_hash
        return version in self.rejected_versions

    def rejecting(self, rollout: RolloutState, limit: int) -> TryOnModelStatus:
        """The status with ``rollout`` rejected, keeping the ``limit`` latest rejected versions."""
        if rollout.version == self.active_version:
            return self.model_copy(update={"rejected_template_hash": rollout.template_hash})
        kept = tuple(v for v in self.rejected_versions if v != rollout.version)
        return self.model_copy(update={"rejected_versions": (*kept, rollout.version)[-limit:]})

    def clearing_rejection(self, version: str) -> TryOnModelStatus:
        """The status with every rejection of ``version`` cleared; ValueError says why when
        there is none."""
        changes: dict[str, object] = {}
        if version in self.rejected_versions:
            changes["rejected_versions"] = tuple(v for v in self.rejected_versions if v != version)
        if version == self.active_version and self.rejected_template_hash is not None:
            changes["rejected_template_hash"] = None
        if not changes:
            listed = ", ".join(self.rejected_versions) or "none"
            raise ValueError(f"version {version} is not rejected (rejected versions: {listed})")
        return self.model_copy(update=changes)

    def to_patch(self) -> dict[str, Any]:
        """The status as JSON for a merge patch: every known field, nulls included."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=False)


def parse_status(raw: dict[str, Any] | None) -> TryOnModelStatus:
    """Reads status written by this operator; unknown or broken fields fall back to defaults."""
    if not raw:
        return TryOnModelStatus()
    cleaned = {k: v for k, v in raw.items() if v is not None}
    try:
        return TryOnModelStatus.model_validate(cleaned)
    except ValueError:
        return TryOnModelStatus()
