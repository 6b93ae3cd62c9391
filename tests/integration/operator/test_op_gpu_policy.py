"""GPU shortage on a blue/green rollout, on a dedicated 6-GPU kwok node per test.

Each TryOnModel runs 2 pods of 2 GPUs: the active colour holds 4 of the node's 6, so a preview
of the same size fits one pod and leaves one Unschedulable. The spec's gpuShortagePolicy decides
what happens next.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration

POOL_LABEL = "tryon.dev/test-pool"
KWOK_NODE_LABEL = "tryon.dev/kwok-node"


@pytest.fixture
def gpu_pool(kube_api: client.ApiClient, namespace: str) -> Iterator[dict[str, str]]:
    """A kwok node with 6 GPUs that only this test's pods select."""
    core = client.CoreV1Api(kube_api)
    name = f"pool-{namespace}"[:63]
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "6"}
    core.create_node(client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name, labels={KWOK_NODE_LABEL: "true", POOL_LABEL: namespace},
            annotations={"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}),
        status=client.V1NodeStatus(allocatable=resources, capacity=resources)))
    wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                         for c in core.read_node(name).status.conditions or []), 30, "pool Ready")
    yield {POOL_LABEL: namespace}
    core.delete_node(name)


@pytest.fixture
def serving_v1_on_pool(operator_factory, registry, create_tom, smoke, healthy_on, gpu_pool):
    def make(policy: str, **rollout: Any):
        v1, v2 = registry.add_version(), registry.add_version()
        registry.set_alias("production", v1)
        operator_factory(smoke.url)
        tom = create_tom(
            "dress", registry.name,
            renderer={"replicas": 2, "nodeSelector": gpu_pool,
                      "resources": {"limits": {"nvidia.com/gpu": 2}}},
            rollout={"gpuShortagePolicy": policy, "progressDeadlineSeconds": 120, **rollout})
        tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1 with 2 pods")
        return tom, v1, v2

    return make


def progressing(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Progressing"), {})


def test_wait_policy_reports_the_shortage_with_numbers_and_keeps_traffic(
        serving_v1_on_pool, registry):
    tom, _, v2 = serving_v1_on_pool("Wait")
    registry.set_alias("production", v2)

    tom.wait(lambda s: progressing(s).get("reason") == "PreviewUnschedulable", 30,
             "PreviewUnschedulable")

    message = progressing(tom.status())["message"]
    assert re.search(r"preview needs 4 nvidia\.com/gpu \(2 pod\(s\) x 2\), 1 pod\(s\) got none; "
                     r"\d of 6 allocatable free on 1 matching node\(s\); gpuShortagePolicy Wait",
                     message), message
    tom.wait_events("GPUShortage")
    assert tom.selector_color() == "blue"
    assert tom.deployment("green").spec.replicas == 2  # waiting: nothing given up


def test_shrink_preview_promotes_a_smaller_preview_then_grows_it(
        serving_v1_on_pool, registry, healthy_on):
    tom, _, v2 = serving_v1_on_pool("ShrinkPreview", scaleDownDelaySeconds=3,
                                     postPromotionSeconds=3)
    registry.set_alias("production", v2)

    tom.wait(healthy_on(v2, "green"), 60, "Healthy on v2 after the shrink")

    events = tom.wait_events("GPUShortage", "PreviewShrunk", "PreviewGrowing")
    # (Events carry 1-second timestamps, so their order within a second is not checked.)
    assert tom.deployment("green").spec.replicas == 2 and tom.ready_pods("green") == 2
    assert tom.deployment("blue").spec.replicas == 0
    assert "RolledBack" not in events


def test_in_place_gives_active_pods_to_the_preview_and_flips(
        serving_v1_on_pool, registry, healthy_on):
    tom, _, v2 = serving_v1_on_pool("InPlace")
    registry.set_alias("production", v2)

    tom.wait(healthy_on(v2, "green"), 60, "Healthy on v2 after making room")

    events = tom.wait_events("GPUShortage", "MadeRoomForPreview")
    assert "RolledBack" not in events
    assert tom.ready_pods("green") == 2


def test_in_place_restores_the_active_colour_when_the_preview_is_rolled_back(
        serving_v1_on_pool, registry, smoke):
    tom, _, v2 = serving_v1_on_pool("InPlace")
    smoke.failing_versions.add(v2)
    registry.set_alias("production", v2)

    tom.wait(lambda s: v2 in (s.get("rejectedVersions") or []), 60, "v2 rejected by smoke test")

    tom.wait_events("MadeRoomForPreview")
    wait_for(lambda: (tom.deployment("blue").spec.replicas == 2
                      and tom.deployment("blue").status.ready_replicas == 2), 30,
             "blue back to 2 Ready pods")
    assert tom.selector_color() == "blue"
