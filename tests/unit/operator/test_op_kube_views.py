"""What the operator reads out of raw objects (observe/parse.py): hand edits, GPU counts, pod
counts; and the smoke gateway's verdict text."""

from __future__ import annotations

import pytest
from tryon_operator.gateways.smoke import failure_summary
from tryon_operator.observe.parse import (
    IMAGE_WAITING_REASONS,
    color_view,
    foreign_template_managers,
    pod_gpus,
)

pytestmark = pytest.mark.unit


def deployment(*entries: tuple[str, dict]) -> dict:
    fields = [{"manager": m, "operation": "Apply", "fieldsV1": f} for m, f in entries]
    return {"metadata": {"name": "dress-blue", "managedFields": fields}}


OURS = ("tryon-operator", {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}})


def test_only_the_operator_owning_the_template_is_no_hand_edit():
    assert foreign_template_managers(deployment(OURS)) == ()


def test_kubectl_set_image_on_the_template_is_a_hand_edit():
    edit = ("kubectl-set", {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"renderer"}': {"f:image": {}}}}}}})
    assert foreign_template_managers(deployment(OURS, edit)) == ("kubectl-set",)


def test_kubectl_rollout_restart_is_not_a_hand_edit():
    restart = ("kubectl-rollout", {"f:spec": {"f:template": {"f:metadata": {"f:annotations": {
        ".": {}, "f:kubectl.kubernetes.io/restartedAt": {}}}}}})
    assert foreign_template_managers(deployment(OURS, restart)) == ()


def test_scaling_by_someone_else_is_not_a_template_edit():
    scale = ("kubectl-scale", {"f:spec": {"f:replicas": {}}})
    assert foreign_template_managers(deployment(OURS, scale)) == ()


def test_a_template_label_added_by_hand_is_a_hand_edit():
    label = ("kubectl-edit", {"f:spec": {"f:template": {"f:metadata": {"f:labels": {
        "f:team": {}}}}}})
    assert foreign_template_managers(deployment(OURS, label)) == ("kubectl-edit",)


def test_pod_gpus_add_up_over_containers():
    pod = {"spec": {"containers": [
        {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
        {"name": "b", "resources": {"limits": None, "requests": {"nvidia.com/gpu": "1"}}},
        {"name": "c"},
    ]}}
    assert pod_gpus(pod) == 3


def test_smoke_failure_names_the_failed_checks_not_the_raw_json():
    body = {"passed": False, "checks": [
        {"name": "finite", "case": 0, "passed": False, "value": 49152, "threshold": 0},
        {"name": "latency_ms", "case": 0, "passed": True, "value": 3.1, "threshold": 500},
        {"name": "not_blank", "case": 0, "passed": False, "value": 0.0, "threshold": 2.0},
    ]}
    summary = failure_summary(body)
    assert summary == ("finite on case 0: 49152 vs threshold 0; "
                       "not_blank on case 0: 0.0 vs threshold 2.0")
    assert "{" not in summary


def test_smoke_failure_without_checks_uses_the_reason():
    assert failure_summary({"passed": False, "reason": "model not loaded"}) == "model not loaded"


def _pod(version: str, template: str, ready: bool, deleting: bool = False) -> dict:
    meta = {"labels": {"tryon.dev/model-version": version},
            "annotations": {"tryon.dev/template-hash": template}}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-22T10:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"conditions": conditions}}


def _dep(version: str, template: str, replicas: int, ready_in_status: int) -> dict:
    return {"metadata": {"name": "dress-green", "generation": 2},
            "spec": {"replicas": replicas, "template": {"metadata": {
                "labels": {"tryon.dev/model-version": version},
                "annotations": {"tryon.dev/template-hash": template}}}},
            "status": {"observedGeneration": 2, "replicas": 0, "readyReplicas": ready_in_status}}


def test_pod_counts_come_from_the_pods_before_the_deployment_status_catches_up():
    view = color_view(_dep("2", "h2", 2, ready_in_status=0),
                               [_pod("2", "h2", True), _pod("2", "h2", True)], crashloop_restarts=3)
    assert (view.ready_replicas, view.updated_replicas, view.status_replicas) == (2, 2, 2)
    assert view.rolled_out("2", "h2", 2)


def test_terminating_and_older_template_pods_do_not_count_as_the_new_template():
    view = color_view(_dep("2", "h2", 2, ready_in_status=2), [
        _pod("2", "h2", True), _pod("2", "h2", False), _pod("1", "h1", True),
        _pod("2", "h2", True, deleting=True)], crashloop_restarts=3)
    assert (view.ready_replicas, view.updated_replicas, view.status_replicas) == (2, 2, 3)
    assert not view.rolled_out("2", "h2", 2)


def _waiting(pod: dict, **waiting: str) -> dict:
    pod["status"]["containerStatuses"] = [{"name": "renderer", "state": {"waiting": waiting}}]
    return pod


@pytest.mark.parametrize("reason", sorted(IMAGE_WAITING_REASONS))
def test_a_pod_waiting_for_its_image_is_counted_with_the_kubelets_words(reason):
    view = color_view(_dep("2", "h2", 2, ready_in_status=0), [
        _waiting(_pod("2", "h2", False), reason=reason, message="no such image"),
        _pod("2", "h2", False)], crashloop_restarts=3)
    assert (view.image_unavailable_pods, view.image_unavailable_message) == (
        1, f"{reason}: no such image")


@pytest.mark.parametrize(("pods", "count", "message"), [
    ([_waiting(_pod("2", "h2", False), reason="ContainerCreating")], 0, ""),
    ([_waiting(_pod("2", "h2", False), reason="CrashLoopBackOff", message="back-off 10s")], 0, ""),
    ([_waiting(_pod("1", "h1", False), reason="ErrImageNeverPull")], 0, ""),
    ([_waiting(_pod("2", "h2", False), reason="ImagePullBackOff")], 1, "ImagePullBackOff"),
], ids=["creating", "crash loop", "older template", "no kubelet message"])
def test_only_current_pods_waiting_on_an_image_are_an_image_problem(pods, count, message):
    view = color_view(_dep("2", "h2", 1, ready_in_status=0), pods, crashloop_restarts=3)
    assert (view.image_unavailable_pods, view.image_unavailable_message) == (count, message)
