"""Issue 5 (self-heal): drift in the children of a Healthy TryOnModel is put back."""

from __future__ import annotations

import pytest
from kubernetes import client
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def healthy(operator_factory, registry, create_tom, smoke, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, renderer={"replicas": 2})
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    return tom


def test_deleted_active_deployment_is_recreated(healthy, kube_api):
    old_uid = healthy.deployment("blue").metadata.uid
    client.AppsV1Api(kube_api).delete_namespaced_deployment("dress-blue", healthy.namespace)

    wait_for(lambda: healthy.deployment("blue").metadata.uid != old_uid
             and (healthy.deployment("blue").status.ready_replicas or 0) == 2, 30,
             "blue recreated and Ready")
    wait_for(lambda: "SelfHealed" in healthy.events(), 10, "a SelfHealed event")


def test_deleted_active_service_is_recreated(healthy, kube_api):
    client.CoreV1Api(kube_api).delete_namespaced_service("dress", healthy.namespace)

    wait_for(lambda: healthy.selector_color() == "blue", 30, "Service dress recreated")


def test_hand_edited_active_selector_is_put_back(healthy, kube_api):
    client.CoreV1Api(kube_api).patch_namespaced_service(
        "dress", healthy.namespace, {"spec": {"selector": {"tryon.dev/color": "green"}}})

    wait_for(lambda: healthy.selector_color() == "blue", 30, "selector back on blue")
    wait_for(lambda: "SelfHealed" in healthy.events(), 10, "a SelfHealed event")


def test_replicas_changed_by_hand_are_restored(healthy, kube_api):
    client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "dress-blue", healthy.namespace, {"spec": {"replicas": 5}})

    wait_for(lambda: healthy.deployment("blue").spec.replicas == 2, 30, "replicas back to 2")


def test_paused_freezes_self_heal(healthy, kube_api):
    healthy.patch_spec({"paused": True})
    healthy.wait(lambda s: s.get("phase") == "Paused", 30, "phase Paused")
    client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "dress-blue", healthy.namespace, {"spec": {"replicas": 3}})

    healthy.patch_spec({"paused": False})

    wait_for(lambda: healthy.deployment("blue").spec.replicas == 2, 30, "replicas restored")


def test_deleting_the_tryonmodel_removes_its_children_without_a_finalizer(healthy, kube_api):
    assert not healthy.get()["metadata"].get("finalizers")
    client.CustomObjectsApi(kube_api).delete_namespaced_custom_object(
        GROUP, VERSION, healthy.namespace, PLURAL, "dress",
        propagation_policy="Foreground")

    apps = client.AppsV1Api(kube_api)
    wait_for(lambda: not apps.list_namespaced_deployment(healthy.namespace).items
             and not client.CoreV1Api(kube_api).list_namespaced_service(healthy.namespace).items,
             60, "children garbage-collected")
