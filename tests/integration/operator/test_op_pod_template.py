"""spec.renderer.podTemplate on the real control plane: what it sets reaches the running pods,
the CRD refuses operator-owned labels, and the operator refuses what the CRD cannot check while
the version that serves is left alone."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.integration.operator.conftest import tryon_body

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime_and_priority_classes(kube_api: client.ApiClient, namespace: str):
    """A RuntimeClass `nvidia-<ns>` (handler runc) and a PriorityClass, as GPU clusters have."""
    node = client.NodeV1Api(kube_api)
    scheduling = client.SchedulingV1Api(kube_api)
    names = f"nvidia-{namespace}"[:63], f"gpu-serving-{namespace}"[:63]
    node.create_runtime_class(client.V1RuntimeClass(
        metadata=client.V1ObjectMeta(name=names[0]), handler="runc"))  # fmt: skip
    scheduling.create_priority_class(client.V1PriorityClass(
        metadata=client.V1ObjectMeta(name=names[1]), value=100000))  # fmt: skip
    yield names
    node.delete_runtime_class(names[0])
    scheduling.delete_priority_class(names[1])


def renderer_pods(kube_api: client.ApiClient, namespace: str) -> list[Any]:
    return client.CoreV1Api(kube_api).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=tryon-renderer").items


def test_what_the_pod_template_sets_is_on_the_running_pods(
    kube_api, namespace, operator_factory, registry, create_tom, smoke, healthy_on,
    runtime_and_priority_classes,
):  # fmt: skip
    runtime_class, priority_class = runtime_and_priority_classes
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, renderer={"replicas": 2, "podTemplate": {
        "metadata": {"labels": {"team": "fit"}},
        "spec": {
            "runtimeClassName": runtime_class,
            "priorityClassName": priority_class,
            "imagePullSecrets": [{"name": "registry-credentials"}],
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "dress"}},
            }],
            "volumes": [{"name": "models", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{"name": "renderer", "volumeMounts": [
                {"name": "models", "mountPath": "/models", "readOnly": True}]}],
        },
    }})  # fmt: skip

    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1 with the pod template")

    pods = renderer_pods(kube_api, namespace)
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.labels["team"] == "fit"
        assert pod.spec.runtime_class_name == runtime_class
        assert pod.spec.priority_class_name == priority_class and pod.spec.priority == 100000
        assert [s.name for s in pod.spec.image_pull_secrets] == ["registry-credentials"]
        assert pod.spec.topology_spread_constraints[0].topology_key == "kubernetes.io/hostname"
        assert {v.name for v in pod.spec.volumes} >= {"tmp", "models"}
        mounts = {m.mount_path: m.read_only for m in pod.spec.containers[0].volume_mounts}
        assert mounts["/models"] is True and "/tmp" in mounts


def test_the_crd_refuses_an_operator_owned_label_in_the_pod_template(kube_api, namespace, crd):
    body = tryon_body("dress", "m", renderer={
        "podTemplate": {"metadata": {"labels": {"tryon.dev/color": "green"}}}})  # fmt: skip
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body)  # fmt: skip
    assert refused.value.status == 422
    assert "podTemplate.metadata.labels may not set operator-owned labels" in refused.value.body


def test_an_operator_owned_field_in_the_pod_template_is_refused_and_what_serves_stays(
    kube_api, namespace, operator_factory, registry, create_tom, smoke, healthy_on,
):  # fmt: skip
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    template = tom.deployment("blue").spec.template.metadata.annotations["tryon.dev/template-hash"]

    tom.patch_spec({"renderer": {"podTemplate": {"spec": {"containers": [
        {"name": "renderer", "readinessProbe": {"exec": {"command": ["true"]}}}]}}}})  # fmt: skip

    def invalid_spec(status: dict[str, Any]) -> dict[str, Any] | None:
        return next((c for c in status.get("conditions", []) if c["type"] == "Degraded"
                     and c["reason"] == "InvalidSpecError"), None)  # fmt: skip

    degraded = tom.wait(invalid_spec, 20, "Degraded InvalidSpecError")
    assert "podTemplate.spec.containers[renderer].readinessProbe" in degraded["message"]
    tom.wait_events("InvalidSpec")
    assert tom.selector_color() == "blue" and tom.status()["activeVersion"] == v1
    assert tom.deployment("blue").spec.template.metadata.annotations[
        "tryon.dev/template-hash"] == template  # fmt: skip
