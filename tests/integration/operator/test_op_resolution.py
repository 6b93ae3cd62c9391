"""Issue 3: model resolution failures are reported, touch nothing that serves, and heal."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def resolved(reason: str | None):
    def check(status):
        cond = next((c for c in status.get("conditions", []) if c["type"] == "ModelResolved"), {})
        if reason is None:
            return cond.get("status") == "True"
        return cond.get("status") == "False" and cond.get("reason") == reason
    return check


def test_missing_alias_is_reported_then_recovers_once_the_alias_exists(
        operator_factory, registry, create_tom, smoke, healthy_on):
    v1 = registry.add_version()
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)

    tom.wait(resolved("AliasNotFound"), 30, "ModelResolved=False AliasNotFound")
    assert tom.status()["phase"] == "Pending"
    assert "production" in tom.condition("ModelResolved")["message"]

    registry.set_alias("production", v1)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy once the alias exists")


def test_missing_registered_model_is_reported(operator_factory, create_tom, smoke, namespace,
                                              crd, mlflow_server):
    operator_factory(smoke.url)
    tom = create_tom("dress", f"no-such-model-{namespace}")
    tom.wait(resolved("RegisteredModelNotFound"), 30, "ModelResolved=False RegisteredModelNotFound")


def test_mlflow_outage_keeps_serving_and_recovers(operator_factory, registry, create_tom, smoke,
                                                 mlflow_server, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")

    mlflow_server.stop()
    try:
        tom.wait(resolved("MlflowUnavailable"), 30, "ModelResolved=False MlflowUnavailable")
        assert tom.selector_color() == "blue"
        assert tom.deployment("blue").spec.replicas == 1
        assert tom.condition("Ready")["status"] == "True"
    finally:
        mlflow_server.start()
    tom.wait(resolved(None), 60, "ModelResolved=True after MLflow is back")
    assert tom.status()["activeVersion"] == v1
