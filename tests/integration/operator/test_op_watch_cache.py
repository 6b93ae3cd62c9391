"""The watch cache on the real control plane: a steady-state reconcile reads nothing from the API
server, and a read right after the operator's own write never sees the object as it was."""

from __future__ import annotations

import pytest
from tryon_operator.api.vocabulary import API_VERSION, KIND, PLURAL
from tryon_operator.gateways.cache.children import CHILDREN
from tryon_operator.gateways.cache.informer import Informer, Resource, wait_synced
from tryon_operator.gateways.cache.kube import CachedKube, Stores
from tryon_operator.gateways.kube import KubeGateway
from tryon_operator.gateways.mlflow import MlflowRegistry
from tryon_operator.gateways.smoke import SmokeTester
from tryon_operator.reconcile import Reconciler
from tryon_operator.settings import OperatorSettings

from tests.support.counting import counting_api_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TRYONMODELS = Resource(KIND, f"/apis/{API_VERSION}", PLURAL, "")


@pytest.fixture
def cached_kube(kube_cluster, namespace):
    api, calls = counting_api_client(kube_cluster.kubeconfig)
    stores = Stores()
    informers = [Informer(api, r, stores.of(r.kind), namespace=namespace)
                 for r in (*CHILDREN, TRYONMODELS)]
    for informer in informers:
        informer.start()
    assert wait_synced(informers, 30)
    yield CachedKube(KubeGateway(api), stores), calls
    for informer in informers:
        informer.stop()


def test_a_steady_state_reconcile_reads_nothing_from_the_api_server(
        operator_factory, registry, create_tom, smoke, mlflow_server, healthy_on, cached_kube):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator = operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    operator.stop()

    kube, calls = cached_kube
    settings = OperatorSettings(mlflow_tracking_uri=mlflow_server.tracking_uri,
                                service_url_template=smoke.url)
    reconciler = Reconciler(kube=kube, registry=MlflowRegistry(), smoke=SmokeTester(),
                            settings=settings)
    before = len(calls)
    results = [reconciler.reconcile(tom.namespace, tom.name) for _ in range(3)]

    assert [r.action for r in results] == ["Steady"] * 3
    assert not any(r.wrote_status for r in results)
    assert calls[before:] == []  # neither reads nor writes: everything came from the watches


def test_a_read_right_after_an_own_scale_sees_the_new_replica_count(
        operator_factory, registry, create_tom, smoke, healthy_on, cached_kube):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator = operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    operator.stop()

    kube, _ = cached_kube
    for replicas in (3, 0, 2):
        kube.scale(tom.namespace, "dress-blue", replicas)
        assert kube.observe(tom.namespace, "dress").observed.blue.replicas == replicas
