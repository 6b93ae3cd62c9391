"""Issue 3: the MLflow-driven blue/green rollout on the real control plane and MLflow server."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_first_deploy_serves_the_alias_version_on_blue(operator_factory, registry, create_tom,
                                                       smoke, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)

    tom.wait(healthy_on(v1, "blue"), 60, "blue Healthy on v1")

    status = tom.status()
    assert status["model"]["version"] == v1
    assert status["model"]["source"].startswith("s3://")
    assert tom.selector_color() == "blue"
    blue = tom.deployment("blue")
    assert blue.spec.template.metadata.labels["tryon.dev/model-version"] == v1
    assert blue.spec.template.spec.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    assert blue.metadata.owner_references[0].kind == "TryOnModel"
    tom.wait_events("RolloutStarted", "SmokeTestPassed", "Promoted", "RolloutComplete")


def test_moving_the_alias_promotes_green_and_scales_blue_down(operator_factory, registry,
                                                             create_tom, smoke, capsys, healthy_on):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, rollout={"scaleDownDelaySeconds": 2})
    tom.wait(healthy_on(v1, "blue"), 60, "blue Healthy on v1")

    start = time.monotonic()
    registry.set_alias("production", v2)
    timeline: dict[str, float] = {}
    blue_seen_at_0: list[datetime] = []

    def progress() -> bool:
        green = tom.deployment("green")
        if "green Ready" not in timeline and tom.ready_pods("green") >= 1 and \
                green.spec.template.metadata.labels["tryon.dev/model-version"] == v2:
            timeline["green Ready"] = round(time.monotonic() - start, 2)
        if "traffic flipped" not in timeline and tom.selector_color() == "green":
            timeline["traffic flipped"] = round(time.monotonic() - start, 2)
        if "blue scaled to 0" not in timeline and "traffic flipped" in timeline and \
                tom.deployment("blue").spec.replicas == 0:
            timeline["blue scaled to 0"] = round(time.monotonic() - start, 2)
            blue_seen_at_0.append(datetime.now(UTC))
        return len(timeline) == 3

    wait_for(progress, 60, "green promoted and blue scaled down", interval=0.05)
    tom.wait(healthy_on(v2, "green"), 30, "green Healthy on v2")
    with capsys.disabled():
        print(f"\npromotion timeline (alias moved = 0 s): {timeline}")

    assert timeline["green Ready"] <= timeline["traffic flipped"] <= timeline["blue scaled to 0"]
    assert v2 in smoke.calls
    history = tom.status()["history"]
    # Measured from the operator's own flip time: the test sees each change a poll late.
    promoted_at = datetime.fromisoformat(history[-1]["promotedAt"])
    assert (blue_seen_at_0[0] - promoted_at).total_seconds() >= 2  # scaleDownDelaySeconds
    assert [h["outcome"] for h in history][-1] == "Promoted"
    assert registry.tags(v2).get("tryon.dev/promoted")


def test_pinned_version_and_legacy_stage_both_work_and_can_be_switched(
        operator_factory, registry, create_tom, smoke, healthy_on):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.client.transition_model_version_stage(registry.name, v2, "Production")
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, model={"version": v1})
    tom.wait(healthy_on(v1), 60, "pinned v1 Healthy")

    tom.patch_spec({"model": {"version": None, "stage": "Production"}})

    tom.wait(healthy_on(v2), 60, "stage Production (v2) Healthy")
    assert tom.status()["model"]["selector"] == "stage Production"


def test_autopromote_off_waits_for_the_promote_annotation(operator_factory, registry,
                                                          create_tom, smoke, kube_api, healthy_on):
    from kubernetes import client

    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, rollout={"autoPromote": False})
    # the first deploy also waits for a person
    tom.wait(lambda s: (s.get("rollout") or {}).get("phase") == "AwaitingPromotion", 60,
             "first deploy awaiting promotion")
    custom = client.CustomObjectsApi(kube_api)
    custom.patch_namespaced_custom_object(GROUP, VERSION, tom.namespace, PLURAL,
                                          tom.name,
                                          {"metadata": {"annotations": {"tryon.dev/promote": v1}}})
    tom.wait(healthy_on(v1, "blue"), 60, "v1 promoted by annotation")

    registry.set_alias("production", v2)
    tom.wait(lambda s: (s.get("rollout") or {}).get("phase") == "AwaitingPromotion", 60,
             "v2 awaiting promotion")
    assert tom.selector_color() == "blue"
    assert tom.condition("Progressing")["reason"] == "AwaitingPromotion"


def test_operator_restart_mid_rollout_resumes_and_promotes_once(
        operator_factory, registry, create_tom, smoke, healthy_on):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator = operator_factory(smoke.url)
    # Readiness takes 3 s (simulated model loading), so there is a window mid-rollout.
    tom = create_tom("dress", registry.name,
                     renderer={"podAnnotations": {"sim.tryon.dev/ready-delay-ms": "3000"}})
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")

    registry.set_alias("production", v2)
    tom.wait(lambda s: (s.get("rollout") or {}).get("version") == v2, 30, "rollout of v2 begun")
    operator.stop(kill=True)
    operator_factory(smoke.url)

    tom.wait(healthy_on(v2, "green"), 60, "v2 promoted by the restarted operator")
    outcomes = [(h["version"], h["outcome"]) for h in tom.status()["history"]]
    assert outcomes.count((v2, "Promoted")) == 1
    assert tom.events().count("RolloutStarted") == 2  # v1 once, v2 once: nothing redone
