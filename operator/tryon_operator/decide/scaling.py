"""Which scaler sizes the active colour, from plain facts: the spec, whether the cluster serves
KEDA's ScaledObject, and where Prometheus is.

CPU says only that the pods are busy; a GPU model server is sized by the requests it holds (KServe's
``scaleMetric: concurrency``, Ray Serve's ``target_ongoing_requests``). The renderer exports
``tryon_in_flight_requests`` and ``tryon_queue_depth``; the HPA cannot read them without a
metrics adapter, so they go through KEDA's Prometheus trigger. Without KEDA the operator does not
scale on them itself: it says so in status and the colour keeps its replica count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..api.models import AutoscalingSpec

ScalerKind = Literal["HorizontalPodAutoscaler", "ScaledObject"]


@dataclass(frozen=True)
class ScalerChoice:
    kind: ScalerKind | None
    prometheus: str | None = None  # the server KEDA's trigger queries
    why_none: str = ""  # in words, when autoscaling is asked for and nothing can do it


def choose_scaler(
    autoscaling: AutoscalingSpec, *, keda_served: bool, prometheus_url: str | None
) -> ScalerChoice:
    if not autoscaling.enabled:
        return ScalerChoice(None)
    if autoscaling.metric == "cpu":
        return ScalerChoice("HorizontalPodAutoscaler")
    prometheus = autoscaling.prometheus_address or prometheus_url
    if not keda_served:
        return ScalerChoice(
            None,
            why_none=(
                f"metric {autoscaling.metric} needs KEDA: this cluster does not serve "
                "keda.sh/v1alpha1 ScaledObjects (install KEDA, or use metric cpu)"
            ),
        )
    if prometheus is None:
        return ScalerChoice(
            None,
            why_none=(
                f"metric {autoscaling.metric} needs a Prometheus to read it from: set "
                "spec.autoscaling.prometheusAddress or the operator's TRYON_PROMETHEUS_URL"
            ),
        )
    return ScalerChoice("ScaledObject", prometheus)
