"""Autoscaling on a serving signal on the real control plane, with KEDA's own ScaledObject CRD
(from its Go module, v2.20.2): without the CRD the operator's own loop drives the colour and says
in status when Prometheus cannot be read; with it the operator owns one ScaledObject on the active
colour, valid for the API server, moved to the new colour at the flip, and no HPA of its own beside
it. KEDA itself does not run here; the own loop on a real Prometheus is in bench/autoscale.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration

KEDA_MODULE = "github.com/kedacore/keda/v2@v2.20.2"
PROMETHEUS = "http://prometheus.monitoring:9090"
UNREACHABLE_PROMETHEUS = "http://127.0.0.1:9"  # discard: nothing listens there


def keda_crd() -> Path:
    """KEDA's ScaledObject CRD from its module (go's module cache; downloaded once)."""
    found = subprocess.run(["go", "mod", "download", "-json", KEDA_MODULE], capture_output=True,
                           text=True, check=True, cwd="/")  # fmt: skip
    return Path(json.loads(found.stdout)["Dir"]) / "config/crd/bases/keda.sh_scaledobjects.yaml"


@pytest.fixture
def keda_installed(kube_cluster: Any, kube_api: client.ApiClient):
    kube_cluster.kubectl("apply", "--server-side", "-f", str(keda_crd()))
    ext = client.ApiextensionsV1Api(kube_api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition("scaledobjects.keda.sh")
        return any(c.type == "Established" and c.status == "True"
                   for c in crd.status.conditions or [])  # fmt: skip

    wait_for(established, 30, "KEDA's ScaledObject CRD Established")
    yield
    kube_cluster.kubectl("delete", "-f", str(keda_crd()), "--wait=true")


def scaled_object(kube_api: client.ApiClient, namespace: str) -> dict[str, Any] | None:
    try:
        return dict(client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", "dress"))  # fmt: skip
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise


def hpa_exists(kube_api: client.ApiClient, namespace: str) -> bool:
    hpas = client.AutoscalingV2Api(kube_api).list_namespaced_horizontal_pod_autoscaler(namespace)
    return any(h.metadata.name == "dress" for h in hpas.items)


def test_without_keda_the_operators_own_loop_drives_and_says_prometheus_is_unreachable(
    operator_factory, registry, create_tom, smoke, healthy_on
):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url, TRYON_PROMETHEUS_URL=UNREACHABLE_PROMETHEUS)
    tom = create_tom("dress", registry.name,
                     autoscaling={"enabled": True, "metric": "inFlight", "target": 2})  # fmt: skip
    tom.wait(healthy_on(v1), 60, "Healthy on v1")
    status = tom.wait(lambda s: s if (s.get("autoscaling") or {}).get("message") else None,
                      20, "status.autoscaling.message")  # fmt: skip
    scaling = status["autoscaling"]
    assert scaling["scaler"] == "TryOnModel", scaling
    assert "unreachable" in scaling["message"] and "replicas are held" in scaling["message"]
    assert scaling["desiredReplicas"] == 1
    tom.wait_events("AutoscalingUnavailable")


def test_with_keda_one_scaled_object_follows_the_active_colour_through_a_flip(
    kube_api, namespace, keda_installed, operator_factory, registry, create_tom, smoke, healthy_on
):  # fmt: skip
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url, TRYON_PROMETHEUS_URL=PROMETHEUS)
    tom = create_tom("dress", registry.name, autoscaling={
        "enabled": True, "metric": "inFlight", "target": 2, "minReplicas": 1, "maxReplicas": 6})
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    wait_for(lambda: scaled_object(kube_api, namespace), 20, "the ScaledObject")
    first = scaled_object(kube_api, namespace)
    assert first is not None
    assert first["spec"]["scaleTargetRef"]["name"] == "dress-blue"
    trigger = first["spec"]["triggers"][0]
    assert trigger["metadata"]["serverAddress"] == PROMETHEUS
    query = trigger["metadata"]["query"]
    assert query.startswith(f'sum(tryon_in_flight_requests{{namespace="{namespace}"'), query
    assert not hpa_exists(kube_api, namespace)

    v2 = registry.add_version()
    registry.set_alias("production", v2)
    tom.wait(healthy_on(v2, "green"), 60, "Healthy on v2")

    def moved() -> bool:
        now = scaled_object(kube_api, namespace)
        return now is not None and now["spec"]["scaleTargetRef"]["name"] == "dress-green"

    wait_for(moved, 20, "the ScaledObject on green")
    assert tom.status()["autoscaling"]["scaler"] == "ScaledObject"
    assert not hpa_exists(kube_api, namespace)
