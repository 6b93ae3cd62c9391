"""The pod store keeps only what the views read, and the views read the same from it."""

from __future__ import annotations

import copy
import json

import pytest
from tryon_operator.api.builders import Owner, build_deployment
from tryon_operator.api.models import TryOnModelSpec
from tryon_operator.gateways.cache.informer import slim_pod
from tryon_operator.observe.parse import color_view, pod_gpus

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="uid-1")


def renderer_deployment() -> dict:
    spec = TryOnModelSpec.model_validate({
        "model": {"registeredModel": "tryon-vton"},
        "renderer": {"image": "renderer:1"},
    })
    return build_deployment(spec, "green", "7", OWNER, tracking_uri="http://mlflow", replicas=2)


def pod_of(dep: dict, index: int, *, ready: bool, restarts: int = 0) -> dict:
    template = copy.deepcopy(dep["spec"]["template"])
    metadata = template["metadata"] | {
        "name": f"dress-green-{index}",
        "namespace": "shop",
        "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:spec": {}}}],
    }
    return {
        "metadata": metadata,
        "spec": template["spec"] | {"nodeName": "gpu-node-1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "renderer", "ready": ready, "restartCount": restarts,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}} if restarts else {}},
            ],
        },
    }  # fmt: skip


def test_a_slim_pod_gives_the_same_colour_view_as_the_whole_pod() -> None:
    dep = renderer_deployment()
    pods = [pod_of(dep, 0, ready=True), pod_of(dep, 1, ready=False, restarts=4)]
    whole = color_view(dep, pods, crashloop_restarts=3)
    slim = color_view(dep, [slim_pod(copy.deepcopy(p)) for p in pods], crashloop_restarts=3)
    assert slim == whole


def test_a_slim_pod_keeps_its_gpus_and_node() -> None:
    pod = pod_of(renderer_deployment(), 0, ready=True)
    slim = slim_pod(copy.deepcopy(pod))
    assert pod_gpus(slim) == pod_gpus(pod) == 1
    assert slim["spec"]["nodeName"] == "gpu-node-1"
    assert "managedFields" not in slim["metadata"]


def test_a_slim_pod_is_less_than_half_the_size() -> None:
    pod = pod_of(renderer_deployment(), 0, ready=True)
    whole = len(json.dumps(pod))
    assert len(json.dumps(slim_pod(copy.deepcopy(pod)))) < whole / 2
