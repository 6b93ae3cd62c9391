"""Which scaler sizes the active colour, from plain facts: the spec, whether the cluster serves
KEDA's ScaledObject, and where Prometheus is.

CPU says only that the pods are busy; a GPU model server is sized by the requests it holds (KServe's
``scaleMetric: concurrency``, Ray Serve's ``target_ongoing_requests``). The renderer exports
``tryon_in_flight_requests`` and ``tryon_queue_depth``; the HPA cannot read them without a
metrics adapter, so they go through KEDA's Prometheus trigger where KEDA is installed, and through
the operator's own loop on the same Prometheus query where it is not (``decide/autoscale.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..api.models import AutoscalingSpec

ScalerKind = Literal["HorizontalPodAutoscaler", "ScaledObject", "TryOnModel"]


@dataclass(frozen=True)
class ScalerChoice:
    kind: ScalerKind | None
    prometheus: str | None = None  # the server the serving signal is read from
    why_none: str = ""  # in words, when autoscaling is asked for and nothing can do it


def wants_hpa(autoscaling: AutoscalingSpec) -> bool:
    """An HPA on CPU: the one scaler the spec alone decides (no KEDA, no Prometheus needed), so the
    self-heal can hold it from the watch cache."""
    return autoscaling.enabled and autoscaling.metric == "cpu"


def choose_scaler(
    autoscaling: AutoscalingSpec, *, keda_served: bool, prometheus_url: str | None
) -> ScalerChoice:
    if not autoscaling.enabled:
        return ScalerChoice(None)
    if wants_hpa(autoscaling):
        return ScalerChoice("HorizontalPodAutoscaler")
    prometheus = autoscaling.prometheus_address or prometheus_url
    if prometheus is None:
        return ScalerChoice(
            None,
            why_none=(
                f"metric {autoscaling.metric} needs a Prometheus to read it from: set "
                "spec.autoscaling.prometheusAddress or the operator's TRYON_PROMETHEUS_URL"
            ),
        )
    return ScalerChoice("ScaledObject" if keda_served else "TryOnModel", prometheus)
