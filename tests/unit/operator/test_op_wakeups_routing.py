"""Which watch events wake which TryOnModel: a person's change to the object, or a child's change
that matters; never the operator's own status write."""

from __future__ import annotations

import copy

import pytest
from tryon_operator.gateways.cache.store import Store
from tryon_operator.registry.watchers import ModelWatchers
from tryon_operator.runtime.wakeups import Wakeups, wants_a_look

pytestmark = pytest.mark.unit


def tryonmodel() -> dict:
    return {"kind": "TryOnModel",
            "metadata": {"namespace": "shop", "name": "dress", "uid": "t1", "generation": 1,
                         "resourceVersion": "1", "labels": {"team": "a"},
                         "annotations": {"note": "x"}},
            "spec": {"model": {"registeredModel": "dress-model"}},
            "status": {"phase": "Ready"}}


def edited(edit) -> dict:
    body = copy.deepcopy(tryonmodel())
    edit(body)
    return body


@pytest.mark.parametrize(("what", "edit", "wants"), [
    ("a spec change (new generation)", lambda b: b["metadata"].update(generation=2), True),
    ("an annotation", lambda b: b["metadata"]["annotations"].update(retry="now"), True),
    ("an annotation removed", lambda b: b["metadata"].pop("annotations"), True),
    ("a label", lambda b: b["metadata"]["labels"].update(team="b"), True),
    ("a deletion starting", lambda b: b["metadata"].update(deletionTimestamp="t"), True),
    ("our own status write", lambda b: b["status"].update(phase="RollingOut"), False),
    ("a new resourceVersion alone", lambda b: b["metadata"].update(resourceVersion="2"), False),
    ("managedFields alone", lambda b: b["metadata"].update(managedFields=[{"m": "x"}]), False),
    ("nothing", lambda b: None, False),
])
def test_which_tryonmodel_changes_want_a_look(what, edit, wants):
    assert wants_a_look(tryonmodel(), edited(edit)) is wants, what


class Queue:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def ensure(self, namespace, name):
        self.calls.append(("ensure", namespace, name))

    def poke(self, namespace, name):
        self.calls.append(("poke", namespace, name))
        return True

    def forget(self, namespace, name):
        self.calls.append(("forget", namespace, name))


def wakeups() -> tuple[Wakeups, Queue, ModelWatchers]:
    queue, watchers = Queue(), ModelWatchers()
    return Wakeups(queue=queue, tryonmodels=Store("TryOnModel"), watchers=watchers), queue, watchers


def test_a_new_tryonmodel_gets_a_loop_and_a_status_write_pokes_nothing():
    route, queue, _ = wakeups()
    route.tryonmodel_event("ADDED", tryonmodel())
    route.tryonmodel_event("MODIFIED", edited(lambda b: b["status"].update(phase="X")))
    assert queue.calls == [("ensure", "shop", "dress"), ("ensure", "shop", "dress")]


def test_a_persons_edit_pokes_the_loop():
    route, queue, _ = wakeups()
    route.tryonmodel_event("ADDED", tryonmodel())
    route.tryonmodel_event("MODIFIED", edited(lambda b: b["metadata"].update(generation=2)))
    assert queue.calls[-1] == ("poke", "shop", "dress")


def test_a_deleted_tryonmodel_is_forgotten_everywhere():
    route, queue, watchers = wakeups()
    route.tryonmodel_event("ADDED", tryonmodel())
    watchers.follow(("shop", "dress"), "dress-model")
    route.tryonmodel_event("DELETED", tryonmodel())
    assert queue.calls[-1] == ("forget", "shop", "dress")
    assert route.tryonmodels.get("shop", "dress") is None
    assert watchers.of("dress-model") == set()


def child(kind: str) -> dict:
    return {"kind": kind, "metadata": {"namespace": "shop", "name": "dress-green", "uid": kind,
                                       "labels": {"app.kubernetes.io/instance": "dress"}}}


@pytest.mark.parametrize(("kind", "wakes"), [
    ("Deployment", True), ("Service", True), ("Pod", True), ("HorizontalPodAutoscaler", False),
])
def test_a_child_wakes_its_owner_unless_its_kind_never_does(kind, wakes):
    route, queue, _ = wakeups()
    route.child_changed("ADDED", child(kind))
    assert queue.calls == ([("poke", "shop", "dress")] if wakes else [])


def test_the_same_child_twice_wakes_its_owner_once():
    route, queue, _ = wakeups()
    route.child_changed("ADDED", child("Pod"))
    route.child_changed("MODIFIED", child("Pod"))
    assert queue.calls == [("poke", "shop", "dress")]
