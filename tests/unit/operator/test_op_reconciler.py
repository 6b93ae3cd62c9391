"""The reconciler with fake gateways: what it writes, and that it writes nothing when steady."""

from __future__ import annotations

import pytest
from tryon_operator.api.builders import LABEL_COLOR
from tryon_operator.api.errors import (
    InvalidSpecError,
    KubeError,
    ModelResolutionError,
)
from tryon_operator.api.models import PendingTag, TryOnModelStatus
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.reconcile.tags import OWED_TAGS_LIMIT, owe_tag

from tests.support.fake_world import FakeKube, body, fake_world, run, serve_v1

pytestmark = pytest.mark.unit


@pytest.fixture
def world():
    return fake_world(FakeKube(body()))


def test_first_reconcile_creates_blue_pinned_to_the_resolved_version(world):
    reconciler, kube, *_ = world
    result = run(reconciler)
    assert kube.deployments["dress-blue"]["version"] == "1"
    assert result.status.rollout is not None and result.status.phase == "Progressing"


def test_ready_and_tested_blue_takes_traffic(world):
    reconciler, kube, _, _, clock = world
    serve_v1(reconciler, kube, clock)
    status = run(reconciler).status
    assert (status.active_color, status.active_version, status.phase) == ("blue", "1", "Healthy")
    assert kube.services["dress"][LABEL_COLOR] == "blue"


def test_steady_state_reconcile_writes_nothing(world):
    reconciler, kube, _, _, clock = world
    serve_v1(reconciler, kube, clock)
    run(reconciler)
    kube.writes.clear()
    kube.events.clear()
    results = [run(reconciler) for _ in range(3)]
    assert kube.writes == [] and kube.events == []
    assert {r.action for r in results} == {"Steady"}


def test_registry_outage_is_reported_and_nothing_serving_is_touched(world):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    registry.answer = ModelResolutionError("MlflowUnavailable", "connection refused")
    kube.writes.clear()
    status = run(reconciler).status
    assert status.condition("ModelResolved").reason == "MlflowUnavailable"
    assert kube.writes == ["status"]
    assert status.active_version == "1"


def test_failed_smoke_test_rejects_the_version_and_tags_it(world):
    reconciler, kube, registry, smoke, clock = world
    serve_v1(reconciler, kube, clock)
    registry.answer = ResolvedModel("2", None, None)
    smoke.passed = False
    run(reconciler)
    kube.settle()
    status = run(reconciler).status
    assert status.rejected_versions == ("2",)
    assert ("2", "tryon.dev/rejected") in registry.tags
    assert kube.deployments["dress-green"]["replicas"] == 0
    assert kube.services["dress"][LABEL_COLOR] == "blue"
    assert "RolledBack" in kube.events


def reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock):
    serve_v1(reconciler, kube, clock)
    registry.answer = ResolvedModel("2", None, None)
    registry.refuses_tags = True
    smoke.passed = False
    run(reconciler)
    kube.settle()
    return run(reconciler).status


def test_a_rejection_tag_mlflow_refused_is_owed_in_status(world):
    reconciler, kube, registry, smoke, clock = world
    status = reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock)
    assert status.rejected_versions == ("2",)
    assert [(t.version, t.key) for t in status.pending_registry_tags] == [
        ("2", "tryon.dev/rejected")]
    assert status.pending_registry_tags[0].value.startswith("shop/dress at 2026-01-01")


def test_owed_tags_are_not_tried_while_mlflow_cannot_resolve(world):
    reconciler, kube, registry, smoke, clock = world
    reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock)
    registry.answer = ModelResolutionError("MlflowUnavailable", "connection refused")
    attempts = registry.tag_attempts
    status = run(reconciler).status
    assert registry.tag_attempts == attempts
    assert len(status.pending_registry_tags) == 1


def test_owed_tags_are_sent_once_mlflow_answers_again(world):
    reconciler, kube, registry, smoke, clock = world
    reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock)
    registry.refuses_tags = False
    status = run(reconciler).status
    assert ("2", "tryon.dev/rejected") in registry.tags
    assert status.pending_registry_tags == ()
    assert kube.body["status"]["pendingRegistryTags"] == []


def test_an_owed_tag_is_kept_while_mlflow_still_refuses_it(world):
    reconciler, kube, registry, smoke, clock = world
    reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock)
    status = run(reconciler).status
    assert [(t.version, t.key) for t in status.pending_registry_tags] == [
        ("2", "tryon.dev/rejected")]


def owed(version: str, value: str) -> PendingTag:
    return PendingTag(registered_model="m", version=version, key="k", value=value)


def test_a_newer_owed_value_for_the_same_version_and_key_replaces_the_older():
    status = owe_tag(TryOnModelStatus(), owed("2", "old"))
    status = owe_tag(status, owed("3", "other"))
    status = owe_tag(status, owed("2", "new"))
    assert [(t.version, t.value) for t in status.pending_registry_tags] == [
        ("3", "other"), ("2", "new")]


def test_owed_tags_are_bounded_and_the_oldest_go_first():
    status = TryOnModelStatus()
    for n in range(OWED_TAGS_LIMIT + 5):
        status = owe_tag(status, owed(str(n), "v"))
    versions = [t.version for t in status.pending_registry_tags]
    assert versions == [str(n) for n in range(5, OWED_TAGS_LIMIT + 5)]


def test_a_tag_owed_to_a_model_the_spec_no_longer_names_is_dropped_not_sent(world):
    reconciler, kube, registry, smoke, clock = world
    reject_v2_while_mlflow_refuses_tags(reconciler, kube, registry, smoke, clock)
    kube.body["spec"]["model"]["registeredModel"] = "other"
    registry.refuses_tags = False
    registry.answer = ResolvedModel("2", None, None)
    status = run(reconciler).status
    assert ("2", "tryon.dev/rejected") not in registry.tags
    assert status.pending_registry_tags == ()


def test_promotion_latency_is_measured_from_the_alias_change(world):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    clock.advance(3)
    kube.settle()
    run(reconciler)
    hist = reconciler.metrics.promotion_latency.labels("shop", "dress")
    assert hist._sum.get() >= 3


def test_invalid_spec_is_reported_once_and_raises(world):
    reconciler, kube, *_ = world
    kube.body["spec"]["renderer"]["replicas"] = 0
    with pytest.raises(InvalidSpecError):
        run(reconciler)
    assert kube.body["status"]["phase"] == "Degraded"
    kube.writes.clear()
    with pytest.raises(InvalidSpecError):
        run(reconciler)
    assert kube.writes == []


def test_metrics_show_the_active_version_and_rollout_outcomes(world):
    from prometheus_client import generate_latest

    reconciler, kube, _, _, clock = world
    serve_v1(reconciler, kube, clock)
    text = generate_latest(reconciler.metrics.registry).decode()
    assert 'tryon_active_version_info{color="blue",name="dress",namespace="shop",version="1"} 1.0' \
        in text
    assert 'tryon_rollouts_total{name="dress",namespace="shop",outcome="promoted"} 1.0' in text


def test_post_promotion_crash_loop_flips_back_and_keeps_the_old_version(world):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    clock.advance(10)
    run(reconciler)  # v1 rollout finished
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    kube.settle()
    assert run(reconciler).status.active_color == "green"
    kube.deployments["dress-green"]["ready"] = False  # lost readiness after the flip

    status = run(reconciler).status

    assert (status.active_color, status.active_version) == ("blue", "1")
    assert status.rejected_versions == ("2",)
    assert kube.services["dress"][LABEL_COLOR] == "blue"


def test_an_object_being_deleted_is_left_to_garbage_collection(world):
    reconciler, kube, _, _, clock = world
    serve_v1(reconciler, kube, clock)
    kube.body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    del kube.deployments["dress-blue"]  # the GC at work (foreground deletion)
    kube.writes.clear()

    assert run(reconciler) is None
    assert kube.writes == []


def test_deleted_active_deployment_comes_back_with_the_promoted_template_not_a_newer_spec(world):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    promoted_hash = kube.deployments["dress-blue"]["hash"]
    # A new pod template and a new version start rolling out to green...
    kube.body["spec"]["renderer"] = {"image": "r:2-untested"}
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    assert kube.deployments["dress-green"]["hash"] != promoted_hash
    # ...and the serving Deployment is deleted meanwhile.
    del kube.deployments["dress-blue"]

    status = run(reconciler).status

    assert kube.deployments["dress-blue"]["hash"] == promoted_hash
    assert status.active_template_hash == promoted_hash
    assert "SelfHealed" in kube.events


def test_a_flip_back_restores_the_previous_renderer_record(world):
    reconciler, kube, registry, _, clock = world
    serve_v1(reconciler, kube, clock)
    v1_renderer = run(reconciler).status.active_renderer
    kube.body["spec"]["renderer"] = {"image": "r:2"}
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    kube.settle()
    promoted = run(reconciler).status
    assert promoted.active_color == "green" and '"image":"r:2"' in promoted.active_renderer
    kube.deployments["dress-green"]["ready"] = False  # loses readiness after the flip

    status = run(reconciler).status

    assert status.active_color == "blue" and status.active_renderer == v1_renderer


def test_active_version_metric_keeps_one_series_per_object():
    from tryon_operator.metrics import Metrics

    metrics = Metrics()
    metrics.set_active("shop", "dress", "1", "blue")
    metrics.set_active("shop", "shirt", "7", "blue")
    metrics.set_active("shop", "dress", "2", "green")

    series = {(s.labels["name"], s.labels["version"], s.labels["color"])
              for m in metrics.active_version.collect() for s in m.samples}
    assert series == {("dress", "2", "green"), ("shirt", "7", "blue")}
    metrics.set_active("shop", "dress", None, None)
    assert {s.labels["name"] for m in metrics.active_version.collect() for s in m.samples} == {
        "shirt"}


def test_a_promotion_whose_status_write_fails_is_told_once_by_the_retry(world):
    reconciler, kube, *_ = world
    run(reconciler)  # blue rolls out
    kube.settle()
    calls = {"n": 0}
    original = kube.patch_status

    def dies_at_the_first_write(namespace, name, status):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KubeError("the process died here (kill -9 after the flip)")
        original(namespace, name, status)

    kube.patch_status = dies_at_the_first_write
    with pytest.raises(KubeError):
        run(reconciler)  # promoted blue and told so, but its status never got written
    assert kube.events.count("Promoted") == 1
    run(reconciler)  # the next attempt (or the next leader) redoes the flip from the old status
    assert kube.events.count("Promoted") == 1  # same decision, same Event name: not told again
    assert kube.body["status"]["activeColor"] == "blue"
