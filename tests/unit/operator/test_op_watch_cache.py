"""The watch cache: reads come from the stores, never stale after the operator's own writes."""

from __future__ import annotations

import threading

import pytest
from tryon_operator.gateways.cache.kube import CachedKube, Stores, caught_up
from tryon_operator.observe.views import ClusterView, HpaView, Observed, ServiceView

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

INSTANCE = "app.kubernetes.io/instance"


def deployment(name: str, version: str, replicas: int, rv: str) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv,
                     "labels": {INSTANCE: "dress"}},
        "spec": {"replicas": replicas, "template": {"metadata": {
            "labels": {"tryon.dev/model-version": version}}}},
    }


def tryonmodel(rv: str) -> dict:
    return {"metadata": {"name": "dress", "namespace": "shop", "uid": "u1", "resourceVersion": rv}}


class LiveGateway:
    """Stands in for the API server: answers writes with a resourceVersion, counts reads."""

    def __init__(self) -> None:
        self.reads: list[str] = []
        self.next_version = 100

    def _written(self) -> str:
        self.next_version += 1
        return str(self.next_version)

    def observe(self, namespace, name):
        self.reads.append("observe")
        return ClusterView(Observed(), ServiceView(), ServiceView(), HpaView())

    def get_tryonmodel(self, namespace, name):
        self.reads.append("get")
        return tryonmodel("live")

    def scale(self, namespace, name, replicas):
        return self._written()

    def patch_status(self, namespace, name, status):
        return self._written()


def synced_stores() -> Stores:
    stores = Stores()
    for store in (stores.deployments, stores.services, stores.hpas, stores.pods):
        store.replace([])
    return stores


def cached(stores: Stores, live: LiveGateway, wait: float = 0.5) -> CachedKube:
    return CachedKube(live, stores, fresh_wait=wait)  # type: ignore[arg-type]


def test_a_synced_cache_answers_without_calling_the_api():
    stores, live = synced_stores(), LiveGateway()
    stores.deployments.upsert(deployment("dress-blue", "3", 2, "50"))
    stores.tryonmodels.upsert(tryonmodel("40"))
    kube = cached(stores, live)
    view = kube.observe("shop", "dress")
    assert kube.get_tryonmodel("shop", "dress")["metadata"]["resourceVersion"] == "40"
    assert (view.observed.blue.exists, view.observed.blue.replicas) == (True, 2)
    assert live.reads == []


def test_before_the_first_listing_reads_go_live():
    live = LiveGateway()
    cached(Stores(), live).observe("shop", "dress")
    assert live.reads == ["observe"]


def test_a_read_right_after_an_own_write_waits_for_the_watch_to_show_it():
    stores, live = synced_stores(), LiveGateway()
    stores.deployments.upsert(deployment("dress-blue", "3", 2, "50"))
    kube = cached(stores, live, wait=2.0)
    kube.scale("shop", "dress-blue", 0)  # the API server answers resourceVersion 101
    watch = threading.Timer(0.1, lambda: stores.deployments.upsert(
        deployment("dress-blue", "3", 0, "101")))
    watch.start()
    view = kube.observe("shop", "dress")
    watch.join()
    assert view.observed.blue.replicas == 0
    assert live.reads == []


def test_a_cache_that_lags_behind_an_own_write_is_not_trusted():
    stores, live = synced_stores(), LiveGateway()
    stores.deployments.upsert(deployment("dress-blue", "3", 2, "50"))
    kube = cached(stores, live, wait=0.05)
    kube.scale("shop", "dress-blue", 0)
    kube.observe("shop", "dress")  # the watch never delivered version 101
    assert live.reads == ["observe"]


def test_a_status_write_the_cache_has_not_seen_yet_reads_the_object_live():
    stores, live = synced_stores(), LiveGateway()
    stores.tryonmodels.upsert(tryonmodel("100"))
    kube = cached(stores, live, wait=0.05)
    kube.patch_status("shop", "dress", {})
    assert kube.get_tryonmodel("shop", "dress")["metadata"]["resourceVersion"] == "live"
    stores.tryonmodels.upsert(tryonmodel("101"))
    assert kube.get_tryonmodel("shop", "dress")["metadata"]["resourceVersion"] == "101"
    assert live.reads == ["get"]


def test_an_unrelated_objects_write_does_not_hold_up_a_read():
    stores, live = synced_stores(), LiveGateway()
    kube = cached(stores, live, wait=5.0)
    kube.scale("shop", "shirt-blue", 0)
    kube.observe("shop", "dress")
    assert live.reads == []


@pytest.mark.parametrize(("seen", "expected", "ok"), [
    ("101", "101", True),
    ("102", "101", True),  # a later write by someone else: the cache is past ours
    ("100", "101", False),
    (None, "101", False),  # not listed yet (just created)
    (None, None, True),  # deleted, and the cache knows
    ("100", None, False),  # deleted, but the cache still has it
    ("a1", "a1", True),  # not integers: only equality counts
    ("a2", "a1", False),
])
def test_caught_up_compares_resource_versions(seen, expected, ok):
    assert caught_up(seen, expected) is ok


def test_the_instance_index_follows_relabels_and_deletions():
    stores = Stores()
    dep = deployment("dress-blue", "3", 2, "50")
    stores.deployments.upsert(dep)
    moved = deployment("dress-blue", "3", 2, "51")
    moved["metadata"]["labels"] = {INSTANCE: "gown"}
    stores.deployments.upsert(moved)
    assert stores.deployments.of_instance("shop", "dress") == []
    gown = stores.deployments.of_instance("shop", "gown")
    assert [d["metadata"]["resourceVersion"] for d in gown] == ["51"]
    stores.deployments.remove(moved)
    assert stores.deployments.of_instance("shop", "gown") == []


def test_a_relisting_drops_what_was_deleted_meanwhile():
    stores = Stores()
    stores.deployments.upsert(deployment("dress-blue", "3", 2, "50"))
    stores.deployments.upsert(deployment("dress-green", "4", 2, "51"))
    dropped = stores.deployments.replace([deployment("dress-green", "4", 2, "60")])
    assert [d["metadata"]["name"] for d in dropped] == ["dress-blue"]
    assert stores.deployments.get("shop", "dress-blue") is None
