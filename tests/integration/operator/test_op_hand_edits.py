"""Hand edits of an operator-owned pod template are put back; a rollout restart is not an edit."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def serving(operator_factory, registry, create_tom, smoke, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    return tom


def container(tom):
    return tom.deployment("blue").spec.template.spec.containers[0]


def test_image_changed_with_kubectl_set_image_is_restored(serving, kube_cluster):
    tom = serving
    kube_cluster.kubectl("-n", tom.namespace, "set", "image", "deployment/dress-blue",
                         "renderer=evil/renderer:latest")

    wait_for(lambda: container(tom).image == "tryon-renderer:test", 15, "image restored")

    tom.wait_events("SelfHealed")
    assert tom.selector_color() == "blue"


def test_env_var_added_by_hand_is_removed(serving, kube_cluster):
    tom = serving
    kube_cluster.kubectl("-n", tom.namespace, "set", "env", "deployment/dress-blue",
                         "DEBUG_BACKDOOR=1")

    wait_for(lambda: all(e.name != "DEBUG_BACKDOOR" for e in container(tom).env or []), 15,
             "hand-added env var removed")
    tom.wait_events("SelfHealed")


def test_rollout_restart_is_left_alone(serving, kube_cluster):
    tom = serving
    kube_cluster.kubectl("-n", tom.namespace, "rollout", "restart", "deployment/dress-blue")
    annotations = tom.deployment("blue").spec.template.metadata.annotations
    assert "kubectl.kubernetes.io/restartedAt" in annotations

    # Several resync periods (0.5 s each) pass without a repair.
    wait_for(lambda: tom.deployment("blue").status.updated_replicas == 1, 15, "restart rolled")
    time.sleep(3)
    assert "SelfHealed" not in tom.events()
    assert "kubectl.kubernetes.io/restartedAt" in (
        tom.deployment("blue").spec.template.metadata.annotations)


def test_deleted_active_deployment_is_rebuilt_from_the_promoted_spec_after_a_key_was_removed(
        operator_factory, registry, create_tom, smoke, healthy_on):
    """Status is merge-patched: a removed pod annotation must not linger in the promoted record."""
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, renderer={"podAnnotations": {"team": "fit"}})
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1 with the annotation")
    tom.patch_spec({"renderer": {"podAnnotations": {"team": None}}})  # a template change
    tom.wait(healthy_on(v1, "green"), 60, "Healthy on the template without it")
    promoted_hash = tom.status()["activeTemplateHash"]

    client.AppsV1Api(tom.api).delete_namespaced_deployment("dress-green", tom.namespace)

    wait_for(lambda: tom.deployment("green").metadata.annotations.get(
        "tryon.dev/template-hash") == promoted_hash, 15, "green rebuilt with the promoted template")
    assert "team" not in (tom.deployment("green").spec.template.metadata.annotations or {})
