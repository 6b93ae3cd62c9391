"""Self-heal: the children made to match status. ``plan`` decides (pure), ``repair`` acts.

Each repair names what it fixes; the ones a person would want to know about are told as a
``SelfHealed`` Event. The preview Service's selector following a rollout is no repair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api.builders import (
    build_deployment,
    build_hpa,
    build_service,
    deployment_name,
    selector_labels,
)
from ..api.models import COLORS, Color, RendererSpec, TryOnModelSpec, TryOnModelStatus, other_color
from ..api.vocabulary import LABEL_COLOR
from ..decide.scaling import wants_hpa
from ..observe.views import ServiceView
from .context import Facts, Step
from .events import Told
from .promotion import renderer_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Apply:
    """Create or put back a Deployment, Service or HPA as built from ``spec``."""

    kind: str  # "Deployment" | "Service" | "HorizontalPodAutoscaler"
    color: Color | None
    version: str | None = None
    replicas: int = 0
    preview: bool = False
    spec: TryOnModelSpec | None = None  # None: the current spec
    heal: str | None = None  # the SelfHealed message, if a person should hear of it


@dataclass(frozen=True)
class RestoreTemplate:
    color: Color
    version: str
    replicas: int
    spec: TryOnModelSpec
    heal: str


@dataclass(frozen=True)
class Scale:
    color: Color
    replicas: int
    heal: str | None = None


@dataclass(frozen=True)
class SetSelector:
    service: str
    color: str
    heal: str | None = None


@dataclass(frozen=True)
class DeleteHpa:
    heal: str | None = None


Repair = Apply | RestoreTemplate | Scale | SetSelector | DeleteHpa


def plan(facts: Facts) -> tuple[TryOnModelStatus, list[Repair]]:
    """The repairs that make the children match ``facts.status``; nothing when paused."""
    if facts.ctx.spec.paused:
        return facts.status, []
    status = facts.status
    repairs: list[Repair] = []
    if status.active_color is not None and status.active_version is not None:
        status = backfill_active_renderer(facts.ctx.spec, status)
        status, active = _active_repairs(facts, status)
        repairs += active
    repairs += _preview_repairs(facts, status)
    repairs += _standby_repairs(facts, status)
    repairs += _idle_colours(facts, status)
    repairs += _service_repairs(facts, status)
    repairs += _hpa_repairs(facts, status)
    return status, repairs


def _active_replicas(facts: Facts, status: TryOnModelStatus, live: int) -> int:
    spec, rollout = facts.ctx.spec, status.rollout
    if spec.autoscaling.enabled:
        return max(spec.autoscaling.min_replicas, live)
    if rollout is not None and rollout.phase != "PostPromotion" and rollout.room_made:
        return max(spec.renderer.replicas - rollout.room_made, 0)  # room given to the preview
    return spec.renderer.replicas


def _active_repairs(
    facts: Facts, status: TryOnModelStatus
) -> tuple[TryOnModelStatus, list[Repair]]:
    active, version = status.active_color, status.active_version
    assert active is not None and version is not None
    promoted = active_spec(facts.ctx.spec, status)
    view = facts.cluster.observed.color(active)
    replicas = _active_replicas(facts, status, view.replicas)
    name = deployment_name(facts.ctx.name, active)
    if not view.exists or view.version != version:
        status = status.model_copy(
            update={"active_template_hash": promoted.renderer.template_hash()}
        )
        heal = f"Deployment {name} recreated (version {version})"
        return status, [Apply("Deployment", active, version, replicas, spec=promoted, heal=heal)]
    if view.foreign_template_managers and view.template_hash == promoted.renderer.template_hash():
        return status, [
            _restore(name, active, version, replicas, promoted, view.foreign_template_managers)
        ]
    if not facts.ctx.spec.autoscaling.enabled and view.replicas != replicas:
        heal = f"Deployment {name} scaled back from {view.replicas} to {replicas} replicas"
        return status, [Scale(active, replicas, heal)]
    return status, []


def _restore(
    name: str,
    color: Color,
    version: str,
    replicas: int,
    spec: TryOnModelSpec,
    managers: tuple[str, ...],
) -> RestoreTemplate:
    heal = (
        f"Deployment {name} pod template was edited by {', '.join(managers)}; "
        f"restored to version {version}"
    )
    return RestoreTemplate(color, version, replicas, spec, heal)


def _preview_repairs(facts: Facts, status: TryOnModelStatus) -> list[Repair]:
    rollout = status.rollout
    spec = facts.ctx.spec
    if (
        rollout is None
        or rollout.phase == "PostPromotion"
        or rollout.template_hash != spec.renderer.template_hash()
    ):
        return []
    view = facts.cluster.observed.color(rollout.color)
    if view.exists and view.foreign_template_managers:
        name = deployment_name(facts.ctx.name, rollout.color)
        managers = view.foreign_template_managers
        return [_restore(name, rollout.color, rollout.version, rollout.replicas, spec, managers)]
    if (
        not view.exists
        or view.version != rollout.version
        or view.template_hash != rollout.template_hash
        or view.replicas != rollout.replicas
    ):
        return [Apply("Deployment", rollout.color, rollout.version, rollout.replicas)]
    return []


def _standby_repairs(facts: Facts, status: TryOnModelStatus) -> list[Repair]:
    """A shrunk warm standby stays at its size for the rollback window: neither grown back to the
    serving size nor scaled to 0 before the window ends (that is the rollout's to do)."""
    rollout = status.rollout
    if (
        rollout is None
        or rollout.phase != "PostPromotion"
        or rollout.previous_color is None
        or rollout.standby_replicas is None
    ):
        return []
    view = facts.cluster.observed.color(rollout.previous_color)
    if not view.exists or view.replicas == rollout.standby_replicas:
        return []
    name = deployment_name(facts.ctx.name, rollout.previous_color)
    heal = (
        f"Deployment {name} (warm standby) scaled back from {view.replicas} to "
        f"{rollout.standby_replicas} replicas"
    )
    return [Scale(rollout.previous_color, rollout.standby_replicas, heal)]


def _idle_colours(facts: Facts, status: TryOnModelStatus) -> list[Repair]:
    """A colour neither serving, previewing nor kept warm after a flip runs no pods."""
    rollout = status.rollout
    busy: set[Color] = {c for c in (status.active_color,) if c is not None}
    if rollout is not None:
        busy.add(rollout.color)
        if rollout.phase == "PostPromotion" and rollout.previous_color is not None:
            busy.add(rollout.previous_color)
    observed = facts.cluster.observed
    return [
        Scale(color, 0)
        for color in COLORS
        if color not in busy and observed.color(color).exists and observed.color(color).replicas > 0
    ]


def _service_repairs(facts: Facts, status: TryOnModelStatus) -> list[Repair]:
    active = status.active_color
    preview: Color = status.preview_color or (other_color(active) if active else "blue")
    return [
        *_service_repair(facts, facts.cluster.active_service, active, preview=False),
        *_service_repair(facts, facts.cluster.preview_service, preview, preview=True),
    ]


def _service_repair(
    facts: Facts, view: ServiceView, color: Color | None, *, preview: bool
) -> list[Repair]:
    spec, owner = facts.ctx.spec, facts.ctx.owner
    name = build_service(spec, owner, color=color, preview=preview)["metadata"]["name"]
    if not view.exists or view.ports != ((spec.service.port, "http"),):
        heal = f"Service {name} ports restored" if view.exists else None
        return [Apply("Service", color, preview=preview, heal=heal)]
    selector = selector_labels(owner.name, color)
    if view.selector == selector:
        return []
    # The preview selector follows each rollout; that is no repair worth telling.
    heal = (
        None
        if preview
        else f"Service {name} selector restored to {LABEL_COLOR}={selector[LABEL_COLOR]}"
    )
    return [SetSelector(name, selector[LABEL_COLOR], heal)]


def _hpa_repairs(facts: Facts, status: TryOnModelStatus) -> list[Repair]:
    autoscaling, hpa, active = facts.ctx.spec.autoscaling, facts.cluster.hpa, status.active_color
    on_cpu = wants_hpa(autoscaling)  # the other scalers are scaler.py's
    if on_cpu and active is not None:
        if (
            not hpa.exists
            or hpa.target != deployment_name(facts.ctx.name, active)
            or hpa.min_replicas != autoscaling.min_replicas
            or hpa.max_replicas != autoscaling.max_replicas
        ):
            return [Apply("HorizontalPodAutoscaler", active)]
    elif hpa.exists and not on_cpu:
        return [DeleteHpa()]
    return []


def repair(step: Step, repairs: list[Repair]) -> None:
    """Carries the planned repairs out in order and tells the ones worth telling."""
    for fix in repairs:
        _carry_out(step, fix)
        if fix.heal is not None:
            log.info("self-heal %s/%s: %s", step.ctx.namespace, step.ctx.name, fix.heal)
            step.tell(Told("Warning", "SelfHealed", fix.heal))


def _carry_out(step: Step, fix: Repair) -> None:
    ctx, kube = step.ctx, step.fx.kube
    if isinstance(fix, Apply):
        kube.apply(_build(step, fix))
    elif isinstance(fix, RestoreTemplate):
        kube.restore_template(
            build_deployment(
                fix.spec,
                fix.color,
                fix.version,
                ctx.owner,
                tracking_uri=ctx.tracking_uri,
                replicas=fix.replicas,
            )
        )
    elif isinstance(fix, Scale):
        step.scale(fix.color, fix.replicas)
    elif isinstance(fix, SetSelector):
        kube.set_selector_color(ctx.namespace, fix.service, fix.color)
    else:
        kube.delete_hpa(ctx.namespace, ctx.name)


def _build(step: Step, fix: Apply) -> dict[str, Any]:
    ctx = step.ctx
    spec = fix.spec or ctx.spec
    if fix.kind == "Service":
        return build_service(spec, ctx.owner, color=fix.color, preview=fix.preview)
    assert fix.color is not None
    if fix.kind == "HorizontalPodAutoscaler":
        return build_hpa(spec, ctx.owner, color=fix.color)
    assert fix.version is not None
    return build_deployment(
        spec,
        fix.color,
        fix.version,
        ctx.owner,
        tracking_uri=ctx.tracking_uri,
        replicas=fix.replicas,
    )


def backfill_active_renderer(spec: TryOnModelSpec, status: TryOnModelStatus) -> TryOnModelStatus:
    """Status from before ``activeRenderer``: the spec is the record when the hashes agree."""
    current = spec.renderer.template_hash()
    if status.active_renderer is None and status.active_template_hash == current:
        return status.model_copy(update={"active_renderer": renderer_record(spec)})
    return status


def active_spec(spec: TryOnModelSpec, status: TryOnModelStatus) -> TryOnModelSpec:
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
