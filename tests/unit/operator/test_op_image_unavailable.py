"""Pods that cannot get their image: said within seconds, told once, rolled back at the deadline."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tryon_operator.api.models import TryOnModelStatus
from tryon_operator.decide import decision as d
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.reconcile.status import degraded_reason

from tests.support.fake_world import FakeKube, body, fake_world, reconciler_on, run, serve_v1

pytestmark = pytest.mark.unit

NO_IMAGE = 'ErrImageNeverPull: Container image "r:1" is not present with pull policy of Never'
NO_NODE = "0/3 nodes are available: Insufficient nvidia.com/gpu"


class ImagelessKube(FakeKube):
    """FakeKube whose pods of some colours show the given image failures or unschedulable pods."""

    def __init__(self, body: dict) -> None:
        super().__init__(body)
        self.no_image: dict[str, str] = {}  # colour -> "<kubelet reason>: <message>"
        self.no_node: dict[str, str] = {}  # colour -> the scheduler's message

    def observe(self, namespace, name):
        cluster = super().observe(namespace, name)
        observed = cluster.observed
        for color in ("blue", "green"):
            view = observed.color(color)
            if color in self.no_image:
                view = replace(view, image_unavailable_pods=1,
                               image_unavailable_message=self.no_image[color])
            if color in self.no_node:
                view = replace(view, unschedulable_pods=1,
                               unschedulable_message=self.no_node[color])
            observed = replace(observed, **{color: view})
        return replace(cluster, observed=observed)


@pytest.fixture
def world():
    return fake_world(ImagelessKube(body()))


def start_v2_without_its_image(reconciler, kube, registry, clock) -> TryOnModelStatus:
    """Blue serves v1; v2 goes to green, whose pods cannot get their image."""
    serve_v1(reconciler, kube, clock)
    clock.advance(10)
    run(reconciler)  # v1 rollout finished
    kube.events.clear()
    kube.no_image["green"] = NO_IMAGE
    registry.answer = ResolvedModel("2", None, None)
    return run(reconciler).status


def progressing(status: TryOnModelStatus) -> tuple[str, str]:
    cond = status.condition("Progressing")
    assert cond is not None
    return cond.reason, cond.message


def test_preview_without_its_image_is_in_progressing_on_the_first_reconcile(world):
    reconciler, kube, registry, _, clock = world
    status = start_v2_without_its_image(reconciler, kube, registry, clock)
    assert progressing(status) == ("PreviewImageUnavailable",
                                   f"version 2 on green: 1 pod(s) cannot start: {NO_IMAGE}")


def test_preview_without_its_image_is_one_warning_event_per_rollout(world):
    reconciler, kube, registry, _, clock = world
    start_v2_without_its_image(reconciler, kube, registry, clock)
    for _ in range(3):
        clock.advance(5)
        run(reconciler)
    assert kube.events.count("ImageUnavailable") == 1


def test_a_restarted_operator_does_not_tell_the_image_problem_again(world):
    reconciler, kube, registry, smoke, clock = world
    start_v2_without_its_image(reconciler, kube, registry, clock)
    run(reconciler_on(kube, registry, smoke, clock))
    assert kube.events.count("ImageUnavailable") == 1


def test_the_next_rollout_without_its_image_is_told_again(world):
    reconciler, kube, registry, _, clock = world
    start_v2_without_its_image(reconciler, kube, registry, clock)
    clock.advance(601)
    run(reconciler)  # v2 rolled back at the deadline
    registry.answer = ResolvedModel("3", None, None)
    run(reconciler)
    assert kube.events.count("ImageUnavailable") == 2


def test_preview_without_its_image_is_rolled_back_only_at_the_deadline(world):
    reconciler, kube, registry, _, clock = world
    start_v2_without_its_image(reconciler, kube, registry, clock)
    clock.advance(599)
    assert run(reconciler).status.rollout is not None
    clock.advance(2)
    status = run(reconciler).status
    assert status.rollout is None and status.rejected_versions == ("2",)
    rolled_back = status.history[-1]
    assert rolled_back.reason == "ProgressDeadlineExceeded"
    assert f"1 pod(s) cannot start: {NO_IMAGE}" in rolled_back.message


@pytest.mark.parametrize(("no_image", "no_node", "reason"), [
    (False, False, "RolloutInProgress"),
    (False, True, "PreviewUnschedulable"),
    (True, False, "PreviewImageUnavailable"),
    (True, True, "PreviewImageUnavailable"),  # scheduled pods would not start anyway
])
def test_progressing_names_what_holds_the_preview(world, no_image, no_node, reason):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    clock.advance(10)
    run(reconciler)
    if no_image:
        kube.no_image["green"] = NO_IMAGE
    if no_node:
        kube.no_node["green"] = NO_NODE
    registry.answer = ResolvedModel("2", None, None)
    assert progressing(run(reconciler).status)[0] == reason


def active_view(**kw) -> d.ColorView:
    return d.ColorView(True, 2, "1", "h", 1, 1, 2, 2, 1, 1, **kw)


@pytest.mark.parametrize(("view", "expected"), [
    (active_view(), None),
    (active_view(image_unavailable_pods=1, image_unavailable_message=NO_IMAGE),
     ("ActiveImageUnavailable",
      f"1 pod(s) of the active colour blue cannot start: {NO_IMAGE}")),
    (active_view(crashlooping_pods=1, image_unavailable_pods=1),
     ("ActiveCrashLooping", "1 pod(s) of the active colour blue are crash-looping")),
], ids=["healthy", "image unavailable", "crash loop first"])
def test_degraded_names_active_pods_without_their_image(view, expected):
    status = TryOnModelStatus(active_color="blue", active_version="1", active_template_hash="h")
    assert degraded_reason(status, "1", "h", d.Observed(blue=view)) == expected
