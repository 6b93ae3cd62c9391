"""Child events are mapped to the TryOnModel whose reconcile they should wake."""

from __future__ import annotations

import pytest
from tryon_operator.runtime.wakeups import owner_of

pytestmark = pytest.mark.unit


def test_a_deployment_maps_to_its_controlling_tryonmodel():
    meta = {
        "labels": {"app.kubernetes.io/instance": "label-name"},
        "ownerReferences": [{"apiVersion": "tryon.dev/v1alpha1", "kind": "TryOnModel",
                             "name": "dress", "uid": "u1", "controller": True}],
    }
    assert owner_of(meta) == "dress"


def test_a_pod_maps_to_its_tryonmodel_by_the_instance_label():
    meta = {
        "labels": {"app.kubernetes.io/instance": "dress", "tryon.dev/color": "green"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "dress-x"}],
    }
    assert owner_of(meta) == "dress"


def test_an_object_with_neither_maps_to_nothing():
    assert owner_of({"labels": {"app": "other"}}) is None
    assert owner_of({}) is None
