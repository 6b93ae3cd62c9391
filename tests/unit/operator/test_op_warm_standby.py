"""Warm standby at a fraction of the GPUs (issue 15, part 2): ``rollout.warmStandbyReplicas``.

The decision is table-tested (pure); the actions and self-heal run against the reconciler's fakes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tryon_operator.api.builders import LABEL_COLOR
from tryon_operator.api.models import RolloutState, TryOnModelSpec, TryOnModelStatus
from tryon_operator.decide import decision as d
from tryon_operator.gateways.mlflow import ResolvedModel

from tests.support.fake_world import FakeKube, body, fake_world, run, serve_v1

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = "hash1"
S = timedelta(seconds=1)


def desired(standby: int | None = 1, replicas: int = 2, **kw) -> d.Desired:
    base = dict(template_hash=H, replicas=replicas, progress_deadline=timedelta(seconds=30),
                scale_down_delay=timedelta(seconds=10), post_promotion=timedelta(seconds=5),
                warm_standby_replicas=standby)
    base.update(kw)
    return d.Desired(version="2", **base)


def flipped(standby: int | None = None, serving: int | None = None, replicas: int = 2,
            previous: str | None = "blue") -> TryOnModelStatus:
    """Green serves v2 since T0; blue (v1) is the previous colour, shrunk to ``standby``."""
    rollout = RolloutState(
        phase="PostPromotion", color="green", version="2", template_hash=H, replicas=replicas,
        started_at=T0, smoke_passed=True, promoted_at=T0, previous_color=previous,
        previous_version="1" if previous else None, previous_template_hash=H,
        standby_replicas=standby, standby_serving_replicas=serving)
    return TryOnModelStatus(active_color="green", active_version="2", active_template_hash=H,
                            rollout=rollout)


def view(version: str, replicas: int, ready: int | None = None, crash: int = 0) -> d.ColorView:
    ready = replicas if ready is None else ready
    return d.ColorView(exists=True, replicas=replicas, version=version, template_hash=H,
                       generation=1, observed_generation=1, status_replicas=replicas,
                       updated_replicas=replicas, ready_replicas=ready, available_replicas=ready,
                       crashlooping_pods=crash)


def seen(blue: d.ColorView, green: d.ColorView | None = None) -> d.Observed:
    return d.Observed(blue=blue, green=green or view("2", 2))


CRASH = view("2", 2, ready=0, crash=2)

CASES = [
    # name, desired, status, observed, now, expected action
    ("unset keeps today's behaviour: the whole old colour waits out the window",
     desired(None), flipped(), seen(view("1", 2)), T0 + S,
     d.Wait("PostPromotion", 5.0)),
    ("right after the flip the old colour shrinks to the standby",
     desired(1), flipped(), seen(view("1", 2)), T0 + S, d.ShrinkStandby("blue", 1, 2)),
    ("shrunk once: it waits out the window, however the view looks",
     desired(1), flipped(1, 2), seen(view("1", 2)), T0 + S, d.Wait("PostPromotion", 5.0)),
    ("a standby as large as the old colour shrinks nothing",
     desired(2), flipped(), seen(view("1", 2)), T0 + S, d.Wait("PostPromotion", 5.0)),
    ("a standby of 0 scales the old colour down at the flip",
     desired(0), flipped(), seen(view("1", 2)), T0 + S, d.ShrinkStandby("blue", 0, 2)),
    ("the window is max(postPromotion, scaleDownDelay): shrunk until it ends",
     desired(1), flipped(1, 2), seen(view("1", 1)), T0 + 9 * S, d.Wait("PostPromotion", 1.0)),
    ("after the window the standby goes to 0 as today",
     desired(1), flipped(1, 2), seen(view("1", 1)), T0 + 10 * S, d.FinishRollout()),
    ("past the window before it shrank: straight to 0, no shrink first",
     desired(1), flipped(), seen(view("1", 2)), T0 + 10 * S, d.FinishRollout()),
    ("with autoscaling the serving size is what the old colour had when above the floor",
     desired(1, replicas=2, autoscaled=True), flipped(), seen(view("1", 3)), T0 + S,
     d.ShrinkStandby("blue", 1, 3)),
    ("with autoscaling an old colour already at the standby size is left alone",
     desired(1, replicas=2, autoscaled=True), flipped(), seen(view("1", 1)), T0 + S,
     d.Wait("PostPromotion", 5.0)),
    ("no previous colour (first deploy): nothing to shrink",
     desired(1), flipped(previous=None), seen(view("1", 2)), T0 + S, d.FinishRollout()),
]


@pytest.mark.parametrize(("want", "status", "observed", "now", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_warm_standby_decision(want, status, observed, now, expected):
    assert d.decide(want, status, observed, now) == expected


FLIP_BACK_CASES = [
    # name, desired, status, observed, (reason, warm, grow_to) or None for no flip back
    ("crash into a shrunk standby flips back at once and grows it",
     desired(1), flipped(1, 2), seen(view("1", 1), CRASH), ("CrashLoop", 1, 2)),
    ("lost readiness into a shrunk standby: the same",
     desired(1), flipped(1, 2), seen(view("1", 1), view("2", 2, ready=1)),
     ("LostReadiness", 1, 2)),
    ("a standby already growing (2 asked, 1 Ready) is not told to grow again",
     desired(1), flipped(1, 2), seen(view("1", 2, ready=1), CRASH), ("CrashLoop", None, None)),
    ("a failure before the shrink flips back to the whole colour, nothing to grow",
     desired(1), flipped(), seen(view("1", 2), CRASH), ("CrashLoop", None, None)),
    ("unset: flip back as today", desired(None), flipped(), seen(view("1", 2), CRASH),
     ("CrashLoop", None, None)),
    ("the failure wins over the shrink in the same look",
     desired(1), flipped(), seen(view("1", 2), CRASH), ("CrashLoop", None, None)),
    ("a standby of 0 has no warm pod: no flip back",
     desired(0), flipped(0, 2), seen(view("1", 0), CRASH), None),
    ("the standby pod not Ready (restarting): no flip back to nothing",
     desired(1), flipped(1, 2), seen(view("1", 1, ready=0), CRASH), None),
]


@pytest.mark.parametrize(("want", "status", "observed", "expected"),
                         [pytest.param(*c[1:], id=c[0]) for c in FLIP_BACK_CASES])
def test_failure_inside_the_window_flips_back_to_the_warm_pods(want, status, observed, expected):
    action = d.decide(want, status, observed, T0 + 2 * S)
    if expected is None:
        assert not isinstance(action, d.FlipBack)
        return
    assert isinstance(action, d.FlipBack)
    assert (action.reason, action.warm, action.grow_to) == expected


def test_a_manual_rollback_into_a_shrunk_standby_grows_it_too():
    action = d.manual_rollback("2", flipped(1, 2), seen(view("1", 1)))
    assert isinstance(action, d.FlipBack)
    assert (action.reason, action.warm, action.grow_to) == (d.MANUAL_ROLLBACK, 1, 2)


@st.composite
def post_promotion(draw):
    standby = draw(st.one_of(st.none(), st.integers(0, 3)))
    shrunk = draw(st.one_of(st.none(), st.integers(0, 3)))
    want = desired(standby, replicas=draw(st.integers(1, 3)), autoscaled=draw(st.booleans()))
    status = flipped(shrunk, draw(st.integers(1, 4)) if shrunk is not None else None)
    blue = view("1", draw(st.integers(0, 4)), crash=0)
    blue = d.ColorView(**{**blue.__dict__, "ready_replicas": draw(st.integers(0, blue.replicas))})
    green = view("2", 2, ready=draw(st.integers(0, 2)), crash=draw(st.integers(0, 1)))
    now = T0 + timedelta(seconds=draw(st.integers(0, 20)))
    return want, status, d.Observed(blue=blue, green=green), now


@settings(max_examples=400, deadline=None)
@given(post_promotion())
def test_standby_properties(case):
    want, status, observed, now = case
    action = d.decide(want, status, observed, now)
    if isinstance(action, d.ShrinkStandby):
        # Only the previous colour, only once, only to the asked size, only inside the window.
        assert action.color == "blue" and status.rollout.standby_replicas is None
        assert action.replicas == want.warm_standby_replicas < observed.blue.replicas
        assert now < T0 + want.rollback_window
        assert action.serving >= want.replicas
    if isinstance(action, d.FlipBack):
        assert observed.blue.ready_replicas > 0  # never to a colour with nothing Ready
        if action.grow_to is not None:
            assert action.grow_to > observed.blue.replicas
    if want.warm_standby_replicas is None:
        assert not isinstance(action, d.ShrinkStandby)


def test_the_spec_field_is_optional_and_not_negative():
    base = {"model": {"registeredModel": "m"}, "renderer": {"image": "r"}}
    assert TryOnModelSpec.model_validate(base).rollout.warm_standby_replicas is None
    spec = TryOnModelSpec.model_validate({**base, "rollout": {"warmStandbyReplicas": 1}})
    assert spec.rollout.warm_standby_replicas == 1
    with pytest.raises(ValueError):
        TryOnModelSpec.model_validate({**base, "rollout": {"warmStandbyReplicas": -1}})


# ------------------------------------------------------------------ actions, with the fakes


class TellingKube(FakeKube):
    """The fake cluster, keeping each Event's message too."""

    def __init__(self, body):
        super().__init__(body)
        self.messages: list[tuple[str, str]] = []

    def emit_event(self, owner, type_, reason, message, key=None):
        told = super().emit_event(owner, type_, reason, message, key)
        if told:
            self.messages.append((reason, message))
        return told

    def told(self, reason: str) -> list[str]:
        return [m for r, m in self.messages if r == reason]


@pytest.fixture
def standby_world():
    spec_body = body(rollout={"scaleDownDelaySeconds": 30, "postPromotionSeconds": 5,
                              "warmStandbyReplicas": 1})
    spec_body["spec"]["renderer"]["replicas"] = 2
    reconciler, kube, registry, _, clock = fake_world(TellingKube(spec_body))
    serve_v1(reconciler, kube, clock)
    clock.advance(60)
    run(reconciler)  # v1's own rollout (no previous colour) finished
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)  # green comes up with 2 pods
    kube.settle()
    kube.writes.clear()
    status = run(reconciler).status  # smoke test, flip, shrink: one reconcile
    return reconciler, kube, clock, status


def test_the_flip_shrinks_the_old_colour_to_the_standby_in_the_same_reconcile(standby_world):
    _, kube, _, status = standby_world
    assert kube.services["dress"][LABEL_COLOR] == "green"
    assert kube.deployments["dress-blue"]["replicas"] == 1
    assert kube.deployments["dress-green"]["replicas"] == 2
    assert kube.writes.index("apply Service dress") < kube.writes.index("scale dress-blue 1")
    assert (status.rollout.standby_replicas, status.rollout.standby_serving_replicas) == (1, 2)
    [told] = kube.told("StandbyShrunk")
    assert "blue (version 1) shrunk from 2 to 1 warm pod(s) for the 30s rollback window" in told
    assert "previous blue kept as a warm standby of 1 pod(s) (serving size 2)" in \
        status.condition("Progressing").message


def test_self_heal_neither_grows_the_standby_nor_drops_it_inside_the_window(standby_world):
    reconciler, kube, clock, _ = standby_world
    kube.writes.clear()
    for _ in range(3):
        clock.advance(5)
        result = run(reconciler)
        assert result.action == "Wait"
    assert [w for w in kube.writes if w.startswith("scale")] == []
    assert kube.deployments["dress-blue"]["replicas"] == 1

    kube.deployments["dress-blue"]["replicas"] = 0  # a person scales the standby away
    run(reconciler)
    assert kube.deployments["dress-blue"]["replicas"] == 1
    assert any("dress-blue (warm standby) scaled back from 0 to 1" in m
               for m in kube.told("SelfHealed"))


def test_after_the_window_the_standby_goes_to_0(standby_world):
    reconciler, kube, clock, _ = standby_world
    clock.advance(31)
    status = run(reconciler).status
    assert status.rollout is None
    assert kube.deployments["dress-blue"]["replicas"] == 0


def test_a_crash_in_the_window_flips_back_first_then_grows_the_standby(standby_world):
    reconciler, kube, clock, _ = standby_world
    clock.advance(2)
    kube.writes.clear()
    kube.deployments["dress-green"]["ready"] = False  # green loses readiness after the flip

    status = run(reconciler).status

    assert kube.services["dress"][LABEL_COLOR] == "blue"
    scaled = [w for w in kube.writes if w.startswith(("apply Service dress", "scale"))]
    assert scaled[:3] == ["apply Service dress", "scale dress-blue 2", "scale dress-green 0"]
    assert (status.active_color, status.active_version) == ("blue", "1")
    assert status.rejected_versions == ("2",)
    [told] = kube.told("RolledBack")
    assert told.endswith("traffic flipped back to blue (version 1); it ran shrunk: flipped "
                         "back to 1 warm pod, growing to 2")
    assert "flipped back to 1 warm pod, growing to 2" in status.history[-1].message
    assert "flipped back to 1 warm pod, growing to 2" in status.condition("Degraded").message
    assert kube.told("SelfHealed") == []  # growing it back is the rollback's, not a repair


def test_with_autoscaling_the_flip_back_points_the_hpa_at_the_standby():
    spec_body = body(rollout={"scaleDownDelaySeconds": 30, "postPromotionSeconds": 5,
                              "warmStandbyReplicas": 1},
                     autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4})
    reconciler, kube, registry, _, clock = fake_world(TellingKube(spec_body))
    serve_v1(reconciler, kube, clock)
    clock.advance(60)
    run(reconciler)
    kube.scale("shop", "dress-blue", 3)  # the HPA had grown blue to 3
    registry.answer = ResolvedModel("2", None, None)
    run(reconciler)
    kube.settle()
    status = run(reconciler).status
    assert kube.deployments["dress-blue"]["replicas"] == 1
    assert status.rollout.standby_serving_replicas == 3
    kube.writes.clear()
    kube.deployments["dress-green"]["ready"] = False

    run(reconciler)

    assert kube.writes[:3] == ["apply Service dress", "scale dress-blue 3",
                               "apply HorizontalPodAutoscaler dress"]
    assert "growing to 3" in kube.told("RolledBack")[0]
