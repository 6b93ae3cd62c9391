"""What the API server admits: renderer pods pass Pod Security "restricted" with no setting, and
pods a ResourceQuota refuses are said in status within seconds, then roll out once it is raised."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration

GPU_QUOTA = "requests.nvidia.com/gpu"


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_renderer_pods_are_admitted_where_pod_security_restricted_is_enforced(
    kube_api: client.ApiClient, namespace: str, operator_factory, registry, create_tom, smoke,
    healthy_on,
):  # fmt: skip
    core = client.CoreV1Api(kube_api)
    core.patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}})  # fmt: skip
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)

    tom = create_tom("dress", registry.name)

    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1 in a restricted namespace")
    assert "PodsRefused" not in tom.events()


def test_a_gpu_quota_refusal_is_said_within_seconds_and_the_rollout_ends_once_it_is_raised(
    kube_api: client.ApiClient, namespace: str, operator_factory, registry, create_tom, smoke,
    healthy_on,
):  # fmt: skip
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_resource_quota(namespace, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="gpus"),
        spec=client.V1ResourceQuotaSpec(hard={GPU_QUOTA: "1"})))  # fmt: skip
    # Until the quota controller has written status.hard, admission refuses every pod.
    wait_for(lambda: (core.read_namespaced_resource_quota("gpus", namespace).status.hard or {})
             .get(GPU_QUOTA) == "1", 30, "quota status")  # fmt: skip
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, renderer={"replicas": 1},
                     rollout={"progressDeadlineSeconds": 60})  # fmt: skip
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1 with the quota's one GPU")

    moved = time.monotonic()
    registry.set_alias("production", v2)
    tom.wait(lambda s: condition(s, "Progressing").get("reason") == "PodsRefused", 10,
             "PodsRefused within 10 s of the alias move")  # fmt: skip
    said_after = time.monotonic() - moved

    progressing = condition(tom.status(), "Progressing")
    assert progressing["status"] == "False", progressing
    assert "by a ResourceQuota" in progressing["message"], progressing
    assert "exceeded quota: gpus" in progressing["message"], progressing
    tom.wait_events("PodsRefused")
    assert tom.selector_color() == "blue" and condition(tom.status(), "Ready")["status"] == "True"
    print(f"alias move -> PodsRefused in status: {said_after:.1f}s")

    core.patch_namespaced_resource_quota("gpus", namespace, {"spec": {"hard": {GPU_QUOTA: "2"}}})

    tom.wait(healthy_on(v2, "green"), 90, "Healthy on v2 once the quota is raised")
    assert v2 not in (tom.status().get("rejectedVersions") or [])
