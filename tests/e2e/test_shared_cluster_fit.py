"""The product on real pods in a cluster shaped like its users': Pod Security "restricted"
enforced, images from a private registry with a pull secret, a pod template with a runtime class,
priority, spread and a volume, and a GPU quota that refuses pods until it is raised."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.conftest import (
    TAG,
    Models,
    Prometheus,
    RealCluster,
    apply_tryonmodel,
    cluster_ip,
    registry,
    try_on,
    tryonmodel,
    wait_for,
    wait_serving,
)

pytestmark = pytest.mark.e2e

NAME = "dress"
GPU_QUOTA = "requests.nvidia.com/gpu"


def _serving_pods(cluster: RealCluster, namespace: str) -> list[dict[str, Any]]:
    colour = cluster.status(NAME, namespace)["activeColor"]
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"tryon.dev/color={colour}",
                        "-o", "json")
    )["items"]  # fmt: skip
    return [p for p in pods if p["status"].get("phase") == "Running"]


def _condition(cluster: RealCluster, namespace: str, kind: str) -> dict[str, Any]:
    conditions = cluster.status(NAME, namespace).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def _answered_by(cluster: RealCluster, shop: str) -> str:
    """The version a shopper request through the ClusterIP gets. Retried for up to 30 s: right
    after a flip kube-proxy may not have programmed the new endpoints yet (connection refused)."""
    url = f"http://{cluster_ip(cluster, NAME, shop)}:80"
    answer = wait_for("a 200 through the ClusterIP", lambda: (r := try_on(url))[0] == 200 and r, 30)
    return str(answer[1])


def _serve_v1(cluster: RealCluster, models: Models, shop: str, **spec: Any) -> str:
    v1 = models.register(seed=1)
    models.promote(v1)
    manifest = tryonmodel(NAME, shop, models.name, cluster.backends, progressDeadlineSeconds=90)
    manifest["spec"]["renderer"].update(spec)
    apply_tryonmodel(cluster, manifest)
    wait_serving(cluster, NAME, shop, v1)
    return v1


def test_renderer_pods_pull_the_commit_tag_from_the_private_registry_with_the_pull_secret(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    _serve_v1(real_cluster, models, shop)
    pod = _serving_pods(real_cluster, shop)[0]
    status = pod["status"]["containerStatuses"][0]
    assert pod["spec"]["containers"][0]["image"].endswith(f":{TAG}")
    assert status["imageID"].startswith(f"{registry.REPOSITORY}/tryon-renderer@sha256:")
    assert pod["spec"]["imagePullSecrets"] == [{"name": registry.PULL_SECRET}]
    labels = real_cluster.get("namespace", shop, "")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    operator = json.loads(real_cluster.kubectl("get", "pods", "-n", "tryon-system", "-o", "json"))[
        "items"
    ][0]
    assert operator["status"]["containerStatuses"][0]["imageID"].startswith(
        f"{registry.REPOSITORY}/tryon-operator@sha256:"
    )


def test_prometheus_scrapes_the_renderer_pods_it_discovers_with_their_model_and_colour(
    real_cluster: RealCluster, models: Models, shop: str, prometheus: Prometheus
) -> None:
    _serve_v1(real_cluster, models, shop)
    colour = real_cluster.status(NAME, shop)["activeColor"]
    # A pod is discovered, and may be scraped, before its model is loaded (tryon_ready 0 then).
    found = wait_for(
        "Prometheus has scraped the renderer's tryon_ready at 1",
        lambda: prometheus.query(f'tryon_ready{{namespace="{shop}"}} == 1') or None,
        60,
    )
    labels = found[0]["metric"]
    assert (labels["instance_name"], labels["color"]) == (NAME, colour)
    assert labels["pod"].startswith(f"{NAME}-{colour}-")
    pod = labels["pod"]
    assert prometheus.query(f'tryon_in_flight_requests{{namespace="{shop}", pod="{pod}"}}')
    leaders = prometheus.query('max(tryon_leader{namespace="tryon-system"})')
    assert leaders and leaders[0]["value"][1] == "1"  # the operator's pods are scraped too


def test_a_pod_template_with_runtime_class_priority_spread_and_a_volume_is_on_the_running_pods(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    real_cluster.kubectl("apply", "-f", "-", input_text=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
             "metadata": {"name": "nvidia"}, "handler": "runc"},
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": "tryon-e2e-serving"}, "value": 1000},
        ]}))  # fmt: skip
    spread = {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": NAME}},
    }
    template = {
        "metadata": {"labels": {"team": "fitting-room"}},
        "spec": {
            "imagePullSecrets": [{"name": registry.PULL_SECRET}],
            "runtimeClassName": "nvidia",
            "priorityClassName": "tryon-e2e-serving",
            "topologySpreadConstraints": [spread],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}}],
            "containers": [
                {"name": "renderer", "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}
            ],
        },
    }
    _serve_v1(real_cluster, models, shop, podTemplate=template)

    pod = _serving_pods(real_cluster, shop)[0]
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert (spec["priorityClassName"], spec["priority"]) == ("tryon-e2e-serving", 1000)
    assert spec["topologySpreadConstraints"] == [spread]
    assert pod["metadata"]["labels"]["team"] == "fitting-room"
    mounted = real_cluster.kubectl(
        "exec", "-n", shop, pod["metadata"]["name"], "-c", "renderer", "--",
        "python", "-c", "import os; print(os.path.ismount('/scratch'))",
    )  # fmt: skip
    assert mounted.strip() == "True"
    assert _answered_by(real_cluster, shop)


def test_a_gpu_quota_refusal_is_said_within_10s_and_the_rollout_finishes_once_it_is_raised(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    core = client.CoreV1Api(client.ApiClient(_configuration(real_cluster)))
    core.create_namespaced_resource_quota(shop, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="gpus"),
        spec=client.V1ResourceQuotaSpec(hard={GPU_QUOTA: "1"})))  # fmt: skip
    wait_for(
        "the quota controller wrote status.hard",
        lambda: core.read_namespaced_resource_quota("gpus", shop).status.hard or {},
        30,
    )
    v1 = _serve_v1(real_cluster, models, shop)

    v2 = models.register(seed=2)
    moved = time.monotonic()
    models.promote(v2)
    wait_for(
        "PodsRefused",
        lambda: _condition(real_cluster, shop, "Progressing").get("reason") == "PodsRefused",
        10,
    )
    said_after = time.monotonic() - moved
    message = _condition(real_cluster, shop, "Progressing")["message"]
    assert "by a ResourceQuota" in message and "exceeded quota" in message, message
    assert real_cluster.events(shop, "PodsRefused")
    assert _answered_by(real_cluster, shop) == v1
    print(f"alias move -> PodsRefused on real pods: {said_after:.1f}s")

    core.patch_namespaced_resource_quota("gpus", shop, {"spec": {"hard": {GPU_QUOTA: "2"}}})
    wait_serving(real_cluster, NAME, shop, v2, timeout=240)


def test_a_pull_secret_the_registry_refuses_is_reported_with_its_401_and_traffic_stays(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serve_v1(real_cluster, models, shop)
    unpulled = f"{TAG}-e2e-{int(time.time())}"  # the same image under a tag the node lacks
    registry.retag("tryon-renderer", TAG, unpulled)
    wrong = registry.pull_secret_manifest(shop, name="wrong-credentials", secret="not-it")
    real_cluster.kubectl("apply", "-f", "-", input_text=json.dumps(wrong))

    backends = real_cluster.backends
    manifest = tryonmodel(NAME, shop, models.name, backends, progressDeadlineSeconds=60)
    renderer = manifest["spec"]["renderer"]
    renderer["image"] = registry.image("tryon-renderer", unpulled)
    renderer["podTemplate"] = {"spec": {"imagePullSecrets": [{"name": "wrong-credentials"}]}}
    apply_tryonmodel(real_cluster, manifest)

    wait_for(
        "Progressing=PreviewImageUnavailable",
        lambda: (
            _condition(real_cluster, shop, "Progressing").get("reason") == "PreviewImageUnavailable"
        ),
        90,
    )
    message = _condition(real_cluster, shop, "Progressing")["message"]
    assert "401 Unauthorized" in message, message
    assert _answered_by(real_cluster, shop) == v1
    wait_for("rolled back at the deadline", lambda: real_cluster.events(shop, "RolledBack"), 150)
    assert real_cluster.status(NAME, shop)["activeVersion"] == v1


def _configuration(cluster: RealCluster) -> client.Configuration:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(cluster.kubeconfig, client_configuration=configuration)
    return configuration
