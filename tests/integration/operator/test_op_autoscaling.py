"""Issue 3: the HPA scales the active colour, moves with the flip, and capacity never drops."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def hpa_target(api, namespace):
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("dress",
                                                                                 namespace)
    return hpa.spec.scale_target_ref.name


def test_hpa_follows_the_flip_and_new_colour_starts_at_the_active_replica_count(
        operator_factory, registry, create_tom, smoke, healthy_on, kube_api):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name,
                     autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    wait_for(lambda: hpa_target(kube_api, tom.namespace) == "dress-blue", 20, "HPA on blue")

    # What the HPA would do under load; the operator must leave it alone.
    client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "dress-blue", tom.namespace, {"spec": {"replicas": 2}})
    wait_for(lambda: (tom.deployment("blue").status.ready_replicas or 0) == 2, 20, "2 blue pods")

    registry.set_alias("production", v2)
    tom.wait(healthy_on(v2, "green"), 60, "v2 promoted")

    assert tom.deployment("green").spec.replicas == 2
    wait_for(lambda: hpa_target(kube_api, tom.namespace) == "dress-green", 20, "HPA on green")
