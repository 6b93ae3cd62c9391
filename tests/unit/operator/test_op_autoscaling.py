"""Autoscaling on a serving signal: which scaler the spec gets (pure, table-tested), what the
HPA and KEDA's ScaledObject look like, and how the reconcile keeps one scaler on the active
colour, moves it with the flip, and says in status why none runs. The operator's own loop, used
where KEDA is not installed, is in test_op_autoscale_loop.py."""

from __future__ import annotations

import pytest
from tryon_operator.api.builders import Owner, build_hpa, build_scaled_object
from tryon_operator.api.models import AutoscalingSpec, TryOnModelSpec
from tryon_operator.decide.scaling import choose_scaler

from tests.support.fake_world import (
    KedaKube,
    body,
    fake_world,
    fast_settings,
    flip_to_v2,
    run,
    serve_v1,
)

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="u1")
PROM = "http://prometheus.monitoring:9090"


def autoscaling(**kw) -> AutoscalingSpec:
    return AutoscalingSpec.model_validate({"enabled": True, **kw})


def spec(**kw) -> TryOnModelSpec:
    return TryOnModelSpec.model_validate({
        "model": {"registeredModel": "m"}, "renderer": {"image": "r:1"},
        "autoscaling": {"enabled": True, **kw},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "keda", "prometheus", "kind", "why"),
    [
        ({"enabled": False}, True, PROM, None, ""),
        ({"metric": "cpu"}, False, None, "HorizontalPodAutoscaler", ""),
        ({"metric": "inFlight"}, True, PROM, "ScaledObject", ""),
        ({"metric": "queueDepth", "prometheusAddress": PROM}, True, None, "ScaledObject", ""),
        ({"metric": "inFlight"}, False, PROM, "TryOnModel", ""),
        ({"metric": "inFlight"}, True, None, None, "needs a Prometheus"),
        ({"metric": "queueDepth"}, False, None, None, "needs a Prometheus"),
    ],
)
def test_the_scaler_follows_the_metric_keda_and_prometheus(kw, keda, prometheus, kind, why):
    choice = choose_scaler(autoscaling(**kw), keda_served=keda, prometheus_url=prometheus)
    assert choice.kind == kind
    assert (why in choice.why_none) if why else choice.why_none == ""


def test_targets_default_per_metric_and_cpu_keeps_its_percentage():
    assert autoscaling(metric="inFlight").per_pod_target() == 2
    assert autoscaling(metric="queueDepth").per_pod_target() == 4
    assert autoscaling(metric="cpu", targetCPUUtilizationPercentage=60).per_pod_target() == 60
    assert autoscaling(metric="inFlight", target=3.5).per_pod_target() == 3.5


def test_a_scaled_object_reads_the_colours_in_flight_total_per_pod_with_a_fallback():
    scaled = build_scaled_object(
        spec(metric="inFlight", target=3, minReplicas=2, maxReplicas=8), OWNER,
        color="green", prometheus=PROM, fallback_replicas=5,
    )  # fmt: skip
    body_ = scaled["spec"]
    assert body_["scaleTargetRef"]["name"] == "dress-green"
    assert (body_["minReplicaCount"], body_["maxReplicaCount"]) == (2, 8)
    assert body_["fallback"] == {"failureThreshold": 3, "replicas": 5}
    trigger = body_["triggers"][0]
    assert (trigger["type"], trigger["metricType"]) == ("prometheus", "AverageValue")
    assert trigger["metadata"] == {
        "serverAddress": PROM,
        "query": 'sum(tryon_in_flight_requests{namespace="shop", pod=~"dress-green-.*"})',
        "threshold": "3",
    }
    behavior = body_["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_the_hpa_scales_up_at_once_and_down_after_the_stabilisation_window():
    hpa = build_hpa(spec(metric="cpu", scaleDownStabilizationSeconds=120), OWNER, color="blue")
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def keda_world(served: bool, **scaling):
    kube = KedaKube(body(autoscaling={"enabled": True, **scaling}), served)
    settings = fast_settings(prometheus_url=PROM)
    reconciler, kube, registry, _, clock = fake_world(kube, settings=settings)
    return reconciler, kube, registry, clock


def test_in_flight_scaling_puts_one_scaled_object_on_the_active_colour_and_no_hpa():
    reconciler, kube, _, clock = keda_world(True, metric="inFlight")
    serve_v1(reconciler, kube, clock)
    status = kube.body["status"]
    assert kube.scaled_objects["dress"]["spec"]["scaleTargetRef"]["name"] == "dress-blue"
    assert not any(w.startswith("apply HorizontalPodAutoscaler") for w in kube.writes)
    assert status["autoscaling"]["scaler"] == "ScaledObject"
    assert status["autoscaling"]["scaleTarget"] == "dress-blue"


def test_the_scaled_object_moves_with_the_flip_and_is_not_applied_again_in_steady_state():
    reconciler, kube, registry, clock = keda_world(True, metric="inFlight")
    serve_v1(reconciler, kube, clock)
    flip_to_v2(reconciler, kube, registry, clock)
    assert kube.body["status"]["activeColor"] == "green"
    assert kube.scaled_objects["dress"]["spec"]["scaleTargetRef"]["name"] == "dress-green"
    applied = kube.writes.count("apply ScaledObject dress")
    clock.advance(1)
    run(reconciler)
    assert kube.writes.count("apply ScaledObject dress") == applied


def test_switching_back_to_cpu_removes_the_scaled_object():
    reconciler, kube, _, clock = keda_world(True, metric="inFlight")
    serve_v1(reconciler, kube, clock)
    kube.body["spec"]["autoscaling"]["metric"] = "cpu"
    run(reconciler)
    assert "dress" not in kube.scaled_objects
    assert kube.body["status"]["autoscaling"]["scaler"] == "HorizontalPodAutoscaler"


def _scale_down(kube) -> dict:
    config = kube.scaled_objects["dress"]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    return config["behavior"]["scaleDown"]


def test_the_scaled_object_holds_scale_in_during_a_rollout_and_lets_go_after_it():
    reconciler, kube, registry, clock = keda_world(True, metric="inFlight")
    serve_v1(reconciler, kube, clock)
    assert "selectPolicy" not in _scale_down(kube)
    registry.answer = type(registry.answer)("2", "run", "s3://y")
    clock.advance(1)
    run(reconciler)
    assert kube.body["status"]["rollout"]
    assert _scale_down(kube)["selectPolicy"] == "Disabled"
    for _ in range(20):
        clock.advance(60)
        run(reconciler)
        kube.settle()
        if not kube.body["status"].get("rollout"):
            break
    run(reconciler)
    assert kube.body["status"]["activeColor"] == "green" and not kube.body["status"].get("rollout")
    assert "selectPolicy" not in _scale_down(kube)
