"""Issue 5 (rollback paths of the state machine): a failing new colour never takes traffic, or
gives it back to the warm old colour; the version is rejected in status, an Event and MLflow."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAULT = "sim.tryon.dev/fault"


def stays(check, seconds: float, what: str) -> None:
    """Fails as soon as ``check`` turns false within ``seconds`` (a bounded observation)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"expected {what} to hold for {seconds}s"
        time.sleep(0.2)


def rejected(version: str, reason: str):
    def check(status):
        degraded = next((c for c in status.get("conditions", []) if c["type"] == "Degraded"), {})
        return (version in status.get("rejectedVersions", []) and status.get("rollout") is None
                and degraded.get("status") == "True" and degraded.get("reason") == reason)
    return check


@pytest.fixture
def serving_v1(operator_factory, registry, create_tom, smoke, healthy_on):
    """A TryOnModel Healthy on v1 (blue), with v2 registered but not yet aliased."""

    def make(**spec):
        v1, v2 = registry.add_version(), registry.add_version()
        registry.set_alias("production", v1)
        operator_factory(smoke.url)
        tom = create_tom("dress", registry.name, **spec)
        tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
        return tom, v1, v2

    return make


@pytest.mark.parametrize(("fault", "deadline", "reason"), [
    ("never-ready", 4, "ProgressDeadlineExceeded"),
    ("crashloop", 120, "CrashLoop"),
])
def test_failing_preview_is_rolled_back_and_its_version_rejected(
        serving_v1, registry, healthy_on, fault, deadline, reason):
    tom, v1, v2 = serving_v1(rollout={"progressDeadlineSeconds": deadline})

    started = time.monotonic()
    tom.patch_spec({"renderer": {"podLabels": {FAULT: fault}}})
    registry.set_alias("production", v2)
    tom.wait(rejected(v2, reason), 60, f"v2 rejected with {reason}")
    elapsed = time.monotonic() - started

    assert elapsed < 60  # a crash loop is caught long before its 120 s deadline
    assert tom.selector_color() == "blue"
    assert tom.status()["activeVersion"] == v1
    wait_for(lambda: tom.deployment("green").spec.replicas == 0, 10, "green scaled to 0")
    tom.wait_events("RolledBack")
    assert reason in registry.tags(v2)["tryon.dev/rejected"]
    assert tom.status()["phase"] == "Degraded"


def test_rejected_version_is_not_retried_until_the_alias_moves(serving_v1, registry, healthy_on):
    tom, _, v2 = serving_v1(rollout={"progressDeadlineSeconds": 3})
    tom.patch_spec({"renderer": {"podLabels": {FAULT: "never-ready"}}})
    registry.set_alias("production", v2)
    tom.wait(rejected(v2, "ProgressDeadlineExceeded"), 60, "v2 rejected")
    rollbacks = tom.wait_events("RolledBack").count("RolledBack")

    tom.patch_spec({"renderer": {"podLabels": None}})  # even a healthy template: v2 stays out
    stays(lambda: tom.status().get("rollout") is None, 4, "no new rollout of v2")
    assert tom.events().count("RolledBack") == rollbacks

    v3 = registry.add_version()
    registry.set_alias("production", v3)
    tom.wait(healthy_on(v3, "green"), 60, "v3 promoted after the alias moved")
    assert tom.condition("Degraded")["status"] == "False"


def test_failing_smoke_test_rolls_back_before_any_traffic_moves(serving_v1, registry, smoke):
    tom, _, v2 = serving_v1()
    smoke.failing_versions.add(v2)

    registry.set_alias("production", v2)

    tom.wait(rejected(v2, "SmokeTestFailed"), 60, "v2 rejected by the smoke test")
    assert tom.selector_color() == "blue"
    assert "blank output" in registry.tags(v2)["tryon.dev/rejected"]
    wait_for(lambda: tom.deployment("green").spec.replicas == 0, 10, "green scaled to 0")


def test_failure_after_promotion_flips_traffic_back_to_the_warm_colour(
        serving_v1, registry, kube_api, capsys):
    tom, v1, v2 = serving_v1(rollout={"postPromotionSeconds": 60, "scaleDownDelaySeconds": 60})
    registry.set_alias("production", v2)
    tom.wait(lambda s: s.get("activeColor") == "green" and s.get("activeVersion") == v2, 60,
             "v2 promoted to green")
    assert tom.deployment("blue").spec.replicas == 1  # still warm

    core = client.CoreV1Api(kube_api)
    pods = core.list_namespaced_pod(tom.namespace,
                                    label_selector="tryon.dev/color=green").items
    injected = time.monotonic()
    for pod in pods:
        core.patch_namespaced_pod(pod.metadata.name, tom.namespace,
                                  {"metadata": {"labels": {FAULT: "crashloop"}}})
    wait_for(lambda: tom.selector_color() == "blue", 60, "traffic back on blue", interval=0.05)
    back = round(time.monotonic() - injected, 2)
    with capsys.disabled():
        print(f"\nfailure injected -> traffic back on blue: {back}s")

    tom.wait(rejected(v2, "CrashLoop"), 30, "v2 rejected after promotion")
    assert tom.status()["activeColor"] == "blue"
    assert tom.status()["activeVersion"] == v1
    assert registry.tags(v2)["tryon.dev/rejected"]


def test_preview_short_of_gpus_is_reported_within_seconds(serving_v1, registry):
    tom, _, v2 = serving_v1(rollout={"progressDeadlineSeconds": 300})
    tom.patch_spec({"renderer": {"resources": {"limits": {"nvidia.com/gpu": 5}}}})  # nodes have 4
    registry.set_alias("production", v2)

    started = time.monotonic()
    tom.wait(lambda s: next((c for c in s.get("conditions", []) if c["type"] == "Progressing"),
                            {}).get("reason") == "PreviewUnschedulable", 30, "PreviewUnschedulable")

    assert time.monotonic() - started < 30  # not the 300 s deadline
    assert "nvidia.com/gpu" in tom.condition("Progressing")["message"]
    assert tom.selector_color() == "blue"


def test_rejection_during_an_mlflow_outage_tags_the_version_once_mlflow_is_back(
        serving_v1, registry, mlflow_server):
    tom, _, v2 = serving_v1(rollout={"progressDeadlineSeconds": 6})
    tom.patch_spec({"renderer": {"podLabels": {FAULT: "never-ready"}}})
    registry.set_alias("production", v2)
    tom.wait(lambda s: (s.get("rollout") or {}).get("version") == v2, 30, "v2 rolling out")

    mlflow_server.stop()
    try:
        status = tom.wait(lambda s: s if v2 in s.get("rejectedVersions", []) else None, 30,
                          "v2 rejected while MLflow is down")
        owed = status.get("pendingRegistryTags") or []
        assert [(t["version"], t["key"]) for t in owed] == [(v2, "tryon.dev/rejected")]
    finally:
        mlflow_server.start()

    tom.wait(lambda s: not s.get("pendingRegistryTags"), 60, "owed tag sent")
    assert "ProgressDeadlineExceeded" in registry.tags(v2)["tryon.dev/rejected"]
