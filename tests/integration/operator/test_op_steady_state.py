"""A steady-state reconcile makes zero write calls to the API server (counted at the HTTP layer)."""

from __future__ import annotations

import pytest
from tryon_operator.gateways.kube import KubeGateway
from tryon_operator.gateways.mlflow import MlflowRegistry
from tryon_operator.gateways.smoke import SmokeTester
from tryon_operator.reconcile import Reconciler
from tryon_operator.settings import OperatorSettings

from tests.support.counting import counting_api_client

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def test_steady_state_reconcile_makes_no_write_calls(operator_factory, registry, create_tom,
                                                     smoke, kube_cluster, mlflow_server,
                                                     healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator = operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    operator.stop()

    api, calls = counting_api_client(kube_cluster.kubeconfig)
    settings = OperatorSettings(mlflow_tracking_uri=mlflow_server.tracking_uri,
                                service_url_template=smoke.url)
    reconciler = Reconciler(kube=KubeGateway(api), registry=MlflowRegistry(), smoke=SmokeTester(),
                            settings=settings)
    results = [reconciler.reconcile(tom.namespace, tom.name) for _ in range(3)]

    assert [r.action for r in results] == ["Steady"] * 3
    assert not any(r.wrote_status for r in results)
    assert calls, "the reconcile must have read the cluster"
    assert [c for c in calls if c[0] in WRITES] == []
    assert smoke.calls.count(v1) == 1  # no smoke test in steady state either
