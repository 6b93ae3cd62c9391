"""Child events wake a reconcile only when they change something the reconcile reads."""

from __future__ import annotations

import copy

import pytest
from tryon_operator.runtime.wakeups import ChildChanges

pytestmark = pytest.mark.unit


def pod() -> dict:
    return {"kind": "Pod", "metadata": {
        "uid": "p1", "resourceVersion": "1",
        "labels": {"tryon.dev/color": "green", "tryon.dev/model-version": "2"},
        "annotations": {"tryon.dev/template-hash": "h2"}},
        "spec": {"nodeName": "gpu-0"},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "False"},
                                  {"type": "PodScheduled", "status": "True"}],
                   "containerStatuses": [{"name": "renderer", "ready": False,
                                          "restartCount": 0}]}}


def deployment() -> dict:
    return {"kind": "Deployment", "metadata": {
        "uid": "d1", "resourceVersion": "1", "generation": 3, "labels": {"a": "b"},
        "managedFields": [{"manager": "tryon-operator", "operation": "Apply"}]},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 3, "replicas": 2, "readyReplicas": 1}}


def service() -> dict:
    return {"kind": "Service", "metadata": {"uid": "s1", "resourceVersion": "1"},
            "spec": {"selector": {"tryon.dev/color": "blue"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def seen(*bodies: dict) -> ChildChanges:
    changes = ChildChanges()
    for body in bodies:
        changes.worth_a_reconcile("ADDED", body)
    return changes


def changed(body: dict, edit) -> dict:
    new = copy.deepcopy(body)
    edit(new)
    return new


def test_a_child_seen_for_the_first_time_wakes_its_owner():
    assert ChildChanges().worth_a_reconcile(None, pod())


def test_the_same_child_again_does_not():
    assert not seen(pod()).worth_a_reconcile("MODIFIED", pod())


@pytest.mark.parametrize(("what", "make", "edit", "wakes"), [
    ("pod turned Ready", pod,
     lambda b: b["status"]["conditions"][0].update(status="True"), True),
    ("pod restarted", pod,
     lambda b: b["status"]["containerStatuses"][0].update(restartCount=1), True),
    ("pod crash-looping", pod,
     lambda b: b["status"]["containerStatuses"][0].update(
         state={"waiting": {"reason": "CrashLoopBackOff"}}), True),
    ("pod cannot get its image", pod,
     lambda b: b["status"]["containerStatuses"][0].update(state={"waiting": {
         "reason": "ErrImageNeverPull",
         "message": 'Container image "r:2" is not present with pull policy of Never'}}), True),
    ("kubelet's waiting message changed", lambda: changed(pod(), lambda b: b["status"][
        "containerStatuses"][0].update(state={"waiting": {"reason": "ErrImagePull",
                                                          "message": "registry timed out"}})),
     lambda b: b["status"]["containerStatuses"][0]["state"]["waiting"].update(
         message="manifest unknown"), True),
    ("pod being deleted", pod,
     lambda b: b["metadata"].update(deletionTimestamp="2026-11-22T10:00:00Z"), True),
    ("pod only got a new resourceVersion", pod,
     lambda b: b["metadata"].update(resourceVersion="2"), False),
    ("pod heartbeat on another condition", pod,
     lambda b: b["status"]["conditions"].append({"type": "Initialized", "status": "True"}), False),
    ("deployment scaled by hand", deployment,
     lambda b: b["spec"].update(replicas=5), True),
    ("deployment template edited", deployment,
     lambda b: b["metadata"].update(generation=4), True),
    ("deployment edited by another manager", deployment,
     lambda b: b["metadata"]["managedFields"].append(
         {"manager": "kubectl-edit", "operation": "Update"}), True),
    ("deployment status counts only", deployment,
     lambda b: b["status"].update(readyReplicas=2, availableReplicas=2), False),
    ("service selector edited", service,
     lambda b: b["spec"]["selector"].update({"tryon.dev/color": "green"}), True),
    ("service only got a new resourceVersion", service,
     lambda b: b["metadata"].update(resourceVersion="9"), False),
])
def test_which_changes_wake_the_owner(what, make, edit, wakes):
    body = make()
    assert seen(body).worth_a_reconcile("MODIFIED", changed(body, edit)) is wakes, what


def test_a_deleted_child_wakes_its_owner_and_is_forgotten():
    changes = seen(pod())
    assert changes.worth_a_reconcile("DELETED", pod())
    assert len(changes) == 0
    assert changes.worth_a_reconcile("ADDED", pod())


def test_an_unknown_kind_always_wakes_its_owner():
    body = {"kind": "ConfigMap", "metadata": {"uid": "c1"}}
    changes = seen(body)
    assert changes.worth_a_reconcile("MODIFIED", body)
