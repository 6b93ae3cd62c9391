"""Pods the API server refuses (quota, Pod Security, ...): said at once, told once, never a
reason to reject the version, and the rollout goes on once the cluster admits them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tryon_operator.api.models import TryOnModelStatus
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.observe.parse import replica_failure_message
from tryon_operator.observe.views import ColorView
from tryon_operator.reconcile.problems import refusal

from tests.support.fake_world import FakeKube, body, fake_world, run, serve_v1

pytestmark = pytest.mark.unit

QUOTA = (
    'pods "dress-green-7c9f-x2" is forbidden: exceeded quota: gpus, requested: '
    "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=1, limited: requests.nvidia.com/gpu=1"
)
POD_SECURITY = (
    'pods "dress-blue-5d8-q1" is forbidden: violates PodSecurity "restricted:latest": '
    'allowPrivilegeEscalation != false (container "renderer" must set '
    "securityContext.allowPrivilegeEscalation=false)"
)


class RefusingKube(FakeKube):
    """FakeKube whose Deployments of some colours carry the API server's refusal."""

    def __init__(self, body: dict) -> None:
        super().__init__(body)
        self.refused: dict[str, str] = {}  # colour -> the ReplicaFailure message

    def observe(self, namespace, name):
        cluster = super().observe(namespace, name)
        observed = cluster.observed
        for color, message in self.refused.items():
            view = replace(observed.color(color), pods_refused_message=message)
            observed = replace(observed, **{color: view})
        return replace(cluster, observed=observed)


@pytest.fixture
def world():
    reconciler, kube, registry, _, clock = fake_world(RefusingKube(body()))
    return reconciler, kube, registry, clock


def start_v2_over_quota(reconciler, kube, registry, clock) -> TryOnModelStatus:
    """Blue serves v1; v2 goes to green, whose pods the quota refuses."""
    serve_v1(reconciler, kube, clock)
    clock.advance(10)
    run(reconciler)
    kube.events.clear()
    kube.refused["green"] = QUOTA
    registry.answer = ResolvedModel("2", None, None)
    return run(reconciler).status


def condition(status: TryOnModelStatus, type_: str) -> tuple[str, str, str]:
    cond = status.condition(type_)
    assert cond is not None
    return cond.status, cond.reason, cond.message


def test_refused_preview_pods_are_progressing_false_on_the_first_reconcile(world):
    status = start_v2_over_quota(*world)
    value, reason, message = condition(status, "Progressing")
    assert (value, reason) == ("False", "PodsRefused")
    assert message.startswith("version 2 on green: the API server refused its pods, by a "
                              "ResourceQuota (not a GPU shortage")
    assert message.endswith(QUOTA)


def test_refused_preview_pods_leave_the_active_colour_serving_and_ready(world):
    reconciler, kube, registry, clock = world
    status = start_v2_over_quota(reconciler, kube, registry, clock)
    assert condition(status, "Ready")[:2] == ("True", "ActiveReady")
    assert kube.services["dress"]["tryon.dev/color"] == "blue"


def test_refused_pods_are_one_warning_event_per_refusal(world):
    reconciler, kube, registry, clock = world
    start_v2_over_quota(reconciler, kube, registry, clock)
    for _ in range(3):
        clock.advance(5)
        run(reconciler)
    assert kube.events.count("PodsRefused") == 1


def test_a_refusal_past_the_progress_deadline_does_not_reject_the_version(world):
    reconciler, kube, registry, clock = world
    start_v2_over_quota(reconciler, kube, registry, clock)
    clock.advance(3600)
    status = run(reconciler).status
    assert status.rollout is not None and status.rollout.version == "2"
    assert "2" not in status.rejected_versions


def test_once_the_pods_are_admitted_the_deadline_starts_over_and_the_rollout_finishes(world):
    reconciler, kube, registry, clock = world
    start_v2_over_quota(reconciler, kube, registry, clock)
    clock.advance(3600)
    run(reconciler)
    del kube.refused["green"]  # the quota was raised
    status = run(reconciler).status
    assert condition(status, "Progressing")[:2] == ("True", "RolloutInProgress")
    clock.advance(599)
    assert run(reconciler).status.rollout is not None  # a full deadline from the admission
    kube.settle()
    run(reconciler)
    assert kube.services["dress"]["tryon.dev/color"] == "green"


def test_a_first_deployment_refused_by_pod_security_says_so_in_ready(world):
    reconciler, kube, _, _ = world
    kube.refused["blue"] = POD_SECURITY
    status = run(reconciler).status
    value, reason, message = condition(status, "Ready")
    assert (value, reason) == ("False", "PodsRefused")
    assert "by Pod Security admission" in message and message.endswith(POD_SECURITY)
    assert kube.events.count("PodsRefused") == 1


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([], ""),
        ([{"type": "Progressing", "status": "True", "message": "ok"}], ""),
        ([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
           "message": QUOTA}], QUOTA),
        ([{"type": "ReplicaFailure", "status": "False", "message": QUOTA}], ""),
    ],
)
def test_the_refusal_is_read_from_the_deployments_replica_failure_condition(
    conditions, expected
):
    assert replica_failure_message({"status": {"conditions": conditions}}) == expected


@pytest.mark.parametrize(
    ("message", "refuser"),
    [
        ('pods "x" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1',
         "a ResourceQuota"),
        ('pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true',
         "Pod Security admission"),
        ('pods "x" is forbidden: maximum cpu usage per Container is 1, but limit is 2',
         "a LimitRange"),
        ('pods "x" is forbidden: minimum memory usage per Pod is 1Gi, but request is 512Mi',
         "a LimitRange"),
        ('admission webhook "gpu.example.com" denied the request: maximum 2 GPUs per team',
         "an admission webhook"),
        ('pods "x" is forbidden: something else entirely', "admission"),
    ],
)
def test_the_refusal_names_who_refused(message: str, refuser: str) -> None:
    said = refusal(ColorView(exists=True, pods_refused_message=message))
    assert said.startswith(f"the API server refused its pods, by {refuser}")
    assert said.endswith(message)
