"""Pure status bookkeeping: history entries, owed tags, the rollout record, the active renderer."""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from ..api.models import (
    Color,
    PendingTag,
    RendererSpec,
    TryOnModelSpec,
    TryOnModelStatus,
)
from ..observe.views import ClusterView, ColorView

log = logging.getLogger(__name__)

OWED_TAGS_LIMIT = 20  # status stays small; the oldest owed tag is dropped first


def owe_tag(status: TryOnModelStatus, tag: PendingTag) -> TryOnModelStatus:
    """Adds a tag to the owed list; a newer value for the same version and key replaces it."""
    kept = tuple(
        t for t in status.pending_registry_tags if (t.version, t.key) != (tag.version, tag.key)
    )
    owed = (*kept, tag)[-OWED_TAGS_LIMIT:]
    return status.model_copy(update={"pending_registry_tags": owed})


def renderer_record(spec: TryOnModelSpec) -> str:
    return json.dumps(
        spec.renderer.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
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


def image_problem(view: ColorView) -> str:
    return f"{view.image_unavailable_pods} pod(s) cannot start: {view.image_unavailable_message}"


def validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"spec.{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


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
