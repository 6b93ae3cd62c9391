"""Issue 8: changes to a TryOnModel's children wake its reconcile at once, whatever the resync.

The operator runs with a 300 s resync here, so anything that happens within seconds was woken by
a watch event on a Deployment, pod or Service, not by the clock.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LONG_RESYNC = {"TRYON_RESYNC_SECONDS": "300"}
SLOW_READY = {"podAnnotations": {"sim.tryon.dev/ready-delay": "3s"}}


@pytest.fixture
def serving_v1(operator_factory, registry, create_tom, smoke, healthy_on):
    """An operator with a 300 s resync and a TryOnModel Healthy on v1 (blue)."""

    def make(**spec):
        v1 = registry.add_version()
        registry.set_alias("production", v1)
        operator_factory(smoke.url, **LONG_RESYNC)
        tom = create_tom("dress", registry.name, **spec)
        tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
        return tom

    return make


def test_pods_turning_ready_flip_traffic_within_seconds(operator_factory, registry, create_tom,
                                                        smoke, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url, **LONG_RESYNC)
    tom = create_tom("dress", registry.name, renderer=SLOW_READY)

    # The create handler scales blue up; its pods are Ready only 3 s later.
    wait_for(lambda: (tom.deployment("blue").status.ready_replicas or 0) >= 1, 60,
             "blue's pod Ready", interval=0.05)
    ready_at = time.monotonic()
    wait_for(lambda: tom.selector_color() == "blue", 30, "active Service on blue",
             interval=0.05)

    assert time.monotonic() - ready_at < 5.0
    tom.wait(healthy_on(v1, "blue"), 10, "Healthy on v1")


def test_a_hand_scaled_deployment_is_restored_within_seconds(serving_v1, kube_api):
    tom = serving_v1(renderer={"replicas": 2})

    client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "dress-blue", tom.namespace, {"spec": {"replicas": 0}})

    wait_for(lambda: tom.deployment("blue").spec.replicas == 2, 5, "replicas back to 2",
             interval=0.05)


def test_a_hand_edited_selector_is_put_back_within_seconds(serving_v1, kube_api):
    tom = serving_v1()

    client.CoreV1Api(kube_api).patch_namespaced_service(
        "dress", tom.namespace, {"spec": {"selector": {"tryon.dev/color": "green"}}})

    wait_for(lambda: tom.selector_color() == "blue", 5, "selector back on blue", interval=0.05)


def test_a_hand_edited_pod_template_is_put_back_within_seconds(serving_v1, kube_cluster):
    tom = serving_v1()

    kube_cluster.kubectl("-n", tom.namespace, "set", "image", "deployment/dress-blue",
                         "renderer=evil/renderer:latest")

    wait_for(lambda: tom.deployment("blue").spec.template.spec.containers[0].image
             == "tryon-renderer:test", 5, "image restored", interval=0.05)


def test_a_crash_loop_after_the_flip_sends_traffic_back_within_seconds(
        serving_v1, registry, kube_api):
    tom = serving_v1(rollout={"postPromotionSeconds": 60, "scaleDownDelaySeconds": 60})
    registry.set_alias("production", registry.add_version())
    tom.wait(lambda s: s.get("activeColor") == "green", 60, "v2 promoted to green")

    core = client.CoreV1Api(kube_api)
    for pod in core.list_namespaced_pod(tom.namespace,
                                        label_selector="tryon.dev/color=green").items:
        core.patch_namespaced_pod(pod.metadata.name, tom.namespace,
                                  {"metadata": {"labels": {"sim.tryon.dev/fault": "crashloop"}}})

    wait_for(lambda: tom.selector_color() == "blue", 10, "traffic back on blue", interval=0.05)


def test_watching_the_children_writes_nothing_to_them(serving_v1, kube_api):
    tom = serving_v1(renderer={"replicas": 2})
    time.sleep(2)  # let kopf see (and, if it would, annotate) every child

    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    selector = "app.kubernetes.io/instance=dress"
    children = (apps.list_namespaced_deployment(tom.namespace, label_selector=selector).items
                + core.list_namespaced_service(tom.namespace, label_selector=selector).items
                + core.list_namespaced_pod(tom.namespace, label_selector=selector).items)
    assert len(children) >= 1 + 2 + 2  # blue, active + preview Service, 2 pods
    for obj in children:
        meta = obj.metadata
        assert not meta.finalizers, meta.name
        assert not [a for a in meta.annotations or {} if "kopf" in a or "last-handled" in a
                    or (a.startswith("tryon.dev/") and a != "tryon.dev/template-hash")], meta.name
        managers = {f.manager for f in meta.managed_fields or []}
        assert not [m for m in managers if "kopf" in m.lower()], (meta.name, managers)


def test_an_alias_moved_in_mlflow_is_seen_within_the_poll_interval_not_the_resync(
        operator_factory, registry, create_tom, smoke, healthy_on):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url, **LONG_RESYNC)  # registry poll 1 s (fixture), no webhook
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    time.sleep(2)  # past the first resolution, so only the poller can notice the move

    registry.set_alias("production", v2)
    moved_at = time.monotonic()

    tom.wait(lambda s: (s.get("model") or {}).get("version") == v2, 15, "v2 resolved")
    assert time.monotonic() - moved_at < 5.0
    tom.wait(healthy_on(v2, "green"), 30, "Healthy on v2")
