"""Issue 15, part 2: ``rollout.warmStandbyReplicas`` on the local control plane.

Two pods serve v1 on blue. After the flip to v2 blue keeps one warm pod; a crash loop injected into
green inside the rollback window flips the Service back to that one pod at once, and blue grows
back to two. New pods take 3 s to turn Ready (simulated model loading), so the flip back visibly
does not wait for the standby to grow.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAULT = "sim.tryon.dev/fault"
READY_DELAY = "sim.tryon.dev/ready-delay"


def event_messages(kube_api, namespace: str, reason: str) -> list[str]:
    items = client.CoreV1Api(kube_api).list_namespaced_event(namespace).items
    return [e.message for e in items if e.reason == reason]


def test_old_colour_runs_one_warm_pod_and_takes_traffic_back_at_once(
        operator_factory, registry, create_tom, smoke, healthy_on, kube_api, capsys):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom(
        "dress", registry.name,
        renderer={"replicas": 2, "podAnnotations": {READY_DELAY: "3000ms"}},
        rollout={"postPromotionSeconds": 60, "scaleDownDelaySeconds": 60,
                 "warmStandbyReplicas": 1})
    tom.wait(healthy_on(v1, "blue"), 90, "Healthy on v1 with 2 pods")
    assert tom.ready_pods("blue") == 2

    registry.set_alias("production", v2)
    wait_for(lambda: tom.selector_color() == "green", 60, "traffic on green", interval=0.05)
    flipped = time.monotonic()
    wait_for(lambda: tom.deployment("blue").spec.replicas == 1, 10, "blue shrunk to 1")
    shrunk = round(time.monotonic() - flipped, 2)
    wait_for(lambda: tom.ready_pods("blue") == 1, 30, "one warm blue pod")
    rollout = tom.status()["rollout"]
    assert (rollout["standbyReplicas"], rollout["standbyServingReplicas"]) == (1, 2)
    assert "warm standby of 1 pod(s)" in tom.condition("Progressing")["message"]
    tom.wait_events("StandbyShrunk")
    time.sleep(1.5)  # self-heal looks again (resync 0.5 s): it must not grow blue back
    assert tom.deployment("blue").spec.replicas == 1

    core = client.CoreV1Api(kube_api)
    pods = core.list_namespaced_pod(tom.namespace, label_selector="tryon.dev/color=green").items
    injected = time.monotonic()
    for pod in pods:
        core.patch_namespaced_pod(pod.metadata.name, tom.namespace,
                                  {"metadata": {"labels": {FAULT: "crashloop"}}})
    wait_for(lambda: tom.selector_color() == "blue", 30, "traffic back on blue", interval=0.05)
    back = round(time.monotonic() - injected, 2)
    warm_at_flip = tom.ready_pods("blue")

    wait_for(lambda: tom.deployment("blue").spec.replicas == 2, 10, "blue scaled back to 2")
    wait_for(lambda: tom.ready_pods("blue") == 2, 30, "blue serving with 2 Ready pods")
    grown = round(time.monotonic() - injected, 2)
    with capsys.disabled():
        print(f"\nflip -> blue shrunk to 1: {shrunk}s; crash injected -> selector on blue: "
              f"{back}s ({warm_at_flip} Ready pod then); -> blue 2/2 Ready: {grown}s")

    assert warm_at_flip == 1  # the selector did not wait for the second pod (3 s to Ready)
    status = tom.wait(lambda s: s if s.get("rollout") is None else None, 30, "rollout ended")
    assert (status["activeColor"], status["activeVersion"]) == ("blue", v1)
    assert v2 in status["rejectedVersions"]
    tom.wait_events("RolledBack")
    [told] = event_messages(kube_api, tom.namespace, "RolledBack")
    assert "it ran shrunk: flipped back to 1 warm pod, growing to 2" in told
    assert "flipped back to 1 warm pod, growing to 2" in status["history"][-1]["message"]
    assert tom.deployment("green").spec.replicas == 0
