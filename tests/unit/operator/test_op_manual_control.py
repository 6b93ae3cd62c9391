"""Manual control (issue 5): rollback/promote/retry requests, decided purely and consumed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tryon_operator.api.models import RolloutState, TryOnModelStatus
from tryon_operator.api.vocabulary import ANNOTATION_PROMOTE, ANNOTATION_RETRY, ANNOTATION_ROLLBACK
from tryon_operator.decide import decision as d
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.reconcile import requests

from tests.support.fake_world import FakeKube, body, fake_world, run, serve_v1

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = "hash1"


def desired(version: str | None = "2", **kw) -> d.Desired:
    return d.Desired(version=version, template_hash=H, replicas=1,
                     progress_deadline=timedelta(seconds=30), **kw)


def ready(version: str, replicas: int = 1) -> d.ColorView:
    return d.ColorView(True, replicas, version, H, 1, 1, replicas, replicas, replicas, replicas)


def status(phase: str | None = None, *, first: bool = False, **kw) -> TryOnModelStatus:
    """Blue serves v1; ``phase`` puts a rollout of v2 on green in that phase."""
    base: dict = dict(active_color="blue", active_version="1", active_template_hash=H)
    if phase is not None:
        post = phase == "PostPromotion"
        base["rollout"] = RolloutState(
            phase=phase, color="green", version="2", template_hash=H, replicas=1, started_at=T0,
            promoted_at=T0 if post else None,
            previous_color="blue" if post and not first else None,
            previous_version="1" if post and not first else None,
        )
        if post:
            base.update(active_color="green", active_version="2")
    base.update(kw)
    return TryOnModelStatus(**base)


WARM = d.Observed(blue=ready("1"), green=ready("2"))
COLD = d.Observed(blue=d.ColorView(True, 0, "1", H), green=ready("2"))

ROLLBACK_CASES = [
    # name, request, status, observed, expected action type (None: refused with a reason)
    ("a preview still coming up is aborted", "2", status("Progressing"), WARM, d.Abort),
    ("a preview awaiting promotion is aborted", "2", status("AwaitingPromotion"), WARM, d.Abort),
    ("after the flip, traffic returns to the warm colour", "2", status("PostPromotion"), WARM,
     d.FlipBack),
    ("after the flip with the old colour cold: refused", "2", status("PostPromotion"), COLD, None),
    ("the first deploy has nothing to return to: refused", "2",
     status("PostPromotion", first=True), WARM, None),
    ("steady state: refused", "1", status(), WARM, None),
    ("another version than the one rolling out: refused", "3", status("Progressing"), WARM, None),
]


@pytest.mark.parametrize(("request_", "st", "observed", "expected"),
                         [c[1:] for c in ROLLBACK_CASES], ids=[c[0] for c in ROLLBACK_CASES])
def test_manual_rollback_decision(request_, st, observed, expected):
    answer = d.manual_rollback(request_, st, observed)
    if expected is None:
        assert isinstance(answer, str) and f"version {request_}" in answer
    else:
        assert isinstance(answer, expected) and answer.reason == "ManualRollback"


def test_decide_acts_on_a_rollback_request_before_anything_else():
    action = d.decide(desired(rollback_requested_for="2"), status("AwaitingPromotion"), WARM, T0)
    assert action == d.Abort("ManualRollback", action.message)


def test_decide_ignores_an_inapplicable_rollback_request():
    assert d.decide(desired("1", rollback_requested_for="1"), status(), WARM, T0) == d.Steady()


def test_a_paused_object_holds_even_with_a_rollback_request():
    action = d.decide(desired(paused=True, rollback_requested_for="2"), status("Progressing"),
                      WARM, T0)
    assert isinstance(action, d.Hold) and action.reason == "Paused"


def test_steady_state_refusal_points_at_the_registry_rollback():
    answer = d.manual_rollback("1", status(), WARM)
    assert isinstance(answer, str) and "tryon-model rollback" in answer
    assert "spec.model.version" in answer


PROMOTE_CASES = [
    # name, request, desired version, status, problem expected
    ("true while a preview is waiting", "true", "2", status("AwaitingPromotion"), False),
    ("its version while the preview comes up", "2", "2", status("Progressing"), False),
    ("another version than the preview", "3", "2", status("Progressing"), True),
    ("true with nothing waiting", "true", "1", status(), True),
    ("the version that already serves", "1", "1", status(), True),
    ("a rejected version", "2", "2", status(rejected_versions=("2",)), True),
    ("registry silent: cannot tell yet", "2", None, status(), False),
    ("after the flip", "true", "2", status("PostPromotion"), True),
]


@pytest.mark.parametrize(("request_", "version", "st", "problem"),
                         [c[1:] for c in PROMOTE_CASES], ids=[c[0] for c in PROMOTE_CASES])
def test_promote_request_problem(request_, version, st, problem):
    assert (requests.promote_problem(request_, desired(version), st) is not None) is problem


def test_retry_clears_a_rejected_version():
    result = status(rejected_versions=("2", "3")).clearing_rejection("2")
    assert result.rejected_versions == ("3",)


def test_retry_of_the_serving_version_clears_its_rejected_template():
    result = status(rejected_template_hash="bad").clearing_rejection("1")
    assert result.rejected_template_hash is None


def test_retry_of_a_version_that_is_not_rejected_says_so():
    with pytest.raises(ValueError) as err:
        status(rejected_versions=("2",)).clearing_rejection("4")
    assert str(err.value) == "version 4 is not rejected (rejected versions: 2)"


def test_a_promotion_fulfils_a_matching_promote_request_only():
    st = status("AwaitingPromotion")
    promote = d.Promote("green")
    assert requests.fulfilled_by(promote, desired(promote_requested_for="2"), st) == {
        ANNOTATION_PROMOTE}
    assert requests.fulfilled_by(promote, desired(promote_requested_for="true"), st) == {
        ANNOTATION_PROMOTE}
    assert requests.fulfilled_by(promote, desired(), st) == set()
    assert requests.fulfilled_by(d.Abort("CrashLoop", ""), desired(rollback_requested_for="2"),
                               st) == set()


# ------------------------------------------------------------------ the reconciler consumes them


class AnnotatedKube(FakeKube):
    def remove_annotation(self, namespace, name, key):
        self.writes.append(f"unannotate {key}")
        self.body["metadata"].get("annotations", {}).pop(key, None)

    def annotate(self, key, value):
        self.body["metadata"].setdefault("annotations", {})[key] = value


@pytest.fixture
def manual_world():
    reconciler, kube, registry, _, clock = fake_world(AnnotatedKube(body()))
    serve_v1(reconciler, kube, clock)
    clock.advance(10)
    run(reconciler)  # v1's rollout finished: steady on blue
    kube.writes.clear()
    kube.events.clear()
    return reconciler, kube, registry, clock


def test_rollback_request_aborts_the_preview_and_is_removed(manual_world):
    reconciler, kube, registry, _ = manual_world
    kube.body["spec"]["rollout"]["autoPromote"] = False
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    kube.annotate(ANNOTATION_ROLLBACK, "2")

    result = run(reconciler)

    assert result.status.rejected_versions == ("2",) and result.status.rollout is None
    assert result.status.history[-1].reason == "ManualRollback"
    assert kube.writes[-1] == f"unannotate {ANNOTATION_ROLLBACK}"
    assert "RolledBack" in kube.events and "ManualRequestIgnored" not in kube.events


def test_rollback_request_in_steady_state_is_removed_with_a_warning(manual_world):
    reconciler, kube, *_ = manual_world
    kube.annotate(ANNOTATION_ROLLBACK, "1")

    result = run(reconciler)

    assert result.action == "Steady"
    assert kube.writes == [f"unannotate {ANNOTATION_ROLLBACK}"]
    assert kube.events == ["ManualRequestIgnored"]


def test_retry_request_clears_the_rejection_and_the_version_rolls_out_again(manual_world):
    reconciler, kube, registry, _ = manual_world
    reconciler.fx.smoke.passed = False
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    kube.settle()
    assert run(reconciler).status.rejected_versions == ("2",)  # smoke test failed
    reconciler.fx.smoke.passed = True
    assert run(reconciler).action == "Hold"
    kube.annotate(ANNOTATION_RETRY, "2")

    result = run(reconciler)

    assert result.status.rejected_versions == ()
    assert result.status.rollout is not None and result.status.rollout.version == "2"
    assert f"unannotate {ANNOTATION_RETRY}" in kube.writes
    assert "RetryRequested" in kube.events


def test_promote_true_is_consumed_by_one_promotion_only(manual_world):
    reconciler, kube, registry, clock = manual_world
    kube.body["spec"]["rollout"]["autoPromote"] = False
    registry.answer = ResolvedModel("2", None, None)
    kube.annotate(ANNOTATION_PROMOTE, "true")
    run(reconciler)
    assert ANNOTATION_PROMOTE in kube.body["metadata"]["annotations"]  # waits for Ready
    kube.settle()
    assert run(reconciler).status.active_version == "2"
    assert ANNOTATION_PROMOTE not in kube.body["metadata"]["annotations"]
    clock.advance(10)
    run(reconciler)

    registry.answer = ResolvedModel("3", None, None)
    run(reconciler)
    kube.settle()
    result = run(reconciler)
    assert result.status.rollout.phase == "AwaitingPromotion"
    assert result.status.active_version == "2"


def test_requests_wait_while_paused(manual_world):
    reconciler, kube, *_ = manual_world
    kube.body["spec"]["paused"] = True
    kube.annotate(ANNOTATION_ROLLBACK, "1")
    run(reconciler)
    kube.writes.clear()
    run(reconciler)
    assert kube.writes == []
    assert ANNOTATION_ROLLBACK in kube.body["metadata"]["annotations"]
