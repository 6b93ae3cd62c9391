"""The rollout state machine, table-tested: (desired, status, observed, now) -> next action."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tryon_operator.api.models import RolloutState, TryOnModelStatus
from tryon_operator.decide import decision as d

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = "hash1"


def desired(version: str | None = "2", **kw) -> d.Desired:
    base = dict(
        template_hash=H,
        replicas=1,
        progress_deadline=timedelta(seconds=30),
        scale_down_delay=timedelta(seconds=10),
        post_promotion=timedelta(seconds=5),
    )
    base.update(kw)
    return d.Desired(version=version, **base)


def steady(**kw) -> TryOnModelStatus:
    base = dict(active_color="blue", active_version="1", active_template_hash=H)
    base.update(kw)
    return TryOnModelStatus(**base)


def rolling(phase="Progressing", smoke_passed=False, promoted_at=None, version="2",
            **kw) -> TryOnModelStatus:
    rollout = RolloutState(
        phase=phase, color="green", version=version, template_hash=H, replicas=1, started_at=T0,
        smoke_passed=smoke_passed, promoted_at=promoted_at,
        previous_color="blue" if promoted_at else None,
        previous_version="1" if promoted_at else None,
        previous_template_hash=H if promoted_at else None,
    )
    if phase == "PostPromotion":
        return steady(active_color="green", active_version=version, rollout=rollout, **kw)
    return steady(rollout=rollout, **kw)


def ready(version="2", replicas=1, **kw) -> d.ColorView:
    base = dict(
        exists=True, replicas=replicas, version=version, template_hash=H, generation=2,
        observed_generation=2, status_replicas=replicas, updated_replicas=replicas,
        ready_replicas=replicas, available_replicas=replicas,
    )
    base.update(kw)
    return d.ColorView(**base)


def green(view: d.ColorView, smoke: d.SmokeOutcome | None = None) -> d.Observed:
    return d.Observed(blue=ready("1"), green=view, smoke=smoke)


PASS = d.SmokeOutcome(passed=True)
FAIL = d.SmokeOutcome(passed=False, message="blank output")
DOWN = d.SmokeOutcome(passed=False, reachable=False, message="connection refused")
S = timedelta(seconds=1)

CASES = [
    # name, desired, status, observed, now, expected action type, check
    ("paused freezes everything", desired(paused=True), rolling(), green(ready()), T0,
     d.Hold),
    ("nothing resolved and nothing serving holds", desired(None), TryOnModelStatus(),
     d.Observed(), T0, d.Hold),
    ("unresolved model keeps what serves", desired(None), steady(), green(d.ColorView()), T0,
     d.Steady),
    ("first deploy starts on blue", desired("1"), TryOnModelStatus(), d.Observed(), T0,
     d.StartRollout),
    ("active version and template desired: steady", desired("1"), steady(),
     green(d.ColorView()), T0, d.Steady),
    ("new version starts on the idle colour", desired("2"), steady(), green(d.ColorView()), T0,
     d.StartRollout),
    ("template change of the same version is a rollout", desired("1", template_hash="h2"),
     steady(), green(d.ColorView()), T0, d.StartRollout),
    ("rejected version is not retried", desired("2"), steady(rejected_versions=("2",)),
     green(d.ColorView()), T0, d.Hold),
    ("rejected template is not retried", desired("1", template_hash="bad"),
     steady(rejected_template_hash="bad"), green(d.ColorView()), T0, d.Hold),
    ("preview not ready yet waits", desired(), rolling(), green(ready(ready_replicas=0)),
     T0 + S, d.Wait),
    ("preview not ready past the deadline aborts", desired(), rolling(),
     green(ready(ready_replicas=0)), T0 + 31 * S, d.Abort),
    ("preview without its image waits for the deadline", desired(), rolling(),
     green(ready(ready_replicas=0, image_unavailable_pods=1)), T0 + S, d.Wait),
    ("preview crash-looping aborts before the deadline", desired(), rolling(),
     green(ready(ready_replicas=0, crashlooping_pods=1)), T0 + S, d.Abort),
    ("preview of an old template does not count as ready", desired(), rolling(),
     green(ready(template_hash="old")), T0 + S, d.Wait),
    ("ready preview gets a smoke test", desired(), rolling(), green(ready()), T0 + S,
     d.RunSmokeTest),
    ("passing smoke test promotes", desired(), rolling(), green(ready(), PASS), T0 + S,
     d.Promote),
    ("smoke passed earlier promotes", desired(), rolling(smoke_passed=True), green(ready()),
     T0 + S, d.Promote),
    ("failing smoke test aborts", desired(), rolling(), green(ready(), FAIL), T0 + S, d.Abort),
    ("unreachable smoke endpoint waits", desired(), rolling(), green(ready(), DOWN), T0 + S,
     d.Wait),
    ("unreachable smoke endpoint past the deadline aborts", desired(), rolling(),
     green(ready(), DOWN), T0 + 31 * S, d.Abort),
    ("smoke test disabled promotes at once", desired(smoke_enabled=False), rolling(),
     green(ready()), T0 + S, d.Promote),
    ("autoPromote false awaits a person", desired(auto_promote=False),
     rolling(smoke_passed=True), green(ready()), T0 + S, d.AwaitPromotion),
    ("promote annotation for this version promotes", desired(auto_promote=False,
     promote_requested_for="2"), rolling("AwaitingPromotion", True), green(ready()),
     T0 + 999 * S, d.Promote),
    ("promote annotation for another version does not", desired(auto_promote=False,
     promote_requested_for="1"), rolling("AwaitingPromotion", True), green(ready()),
     T0 + 999 * S, d.AwaitPromotion),
    ("awaiting promotion has no deadline", desired(auto_promote=False),
     rolling("AwaitingPromotion", True), green(ready()), T0 + 999 * S, d.AwaitPromotion),
    ("alias moved mid-rollout restarts on the same colour", desired("3"), rolling(),
     green(ready(ready_replicas=0)), T0 + S, d.StartRollout),
    ("alias moved back to active cancels", desired("1"), rolling(), green(ready()), T0 + S,
     d.CancelRollout),
    ("unresolved model mid-rollout keeps going", desired(None), rolling(smoke_passed=True),
     green(ready()), T0 + S, d.Promote),
    ("healthy after flip waits out the warm period",
     desired(), rolling("PostPromotion", True, T0), green(ready()), T0 + 6 * S, d.Wait),
    ("after the warm period the rollout finishes", desired(),
     rolling("PostPromotion", True, T0), green(ready()), T0 + 10 * S, d.FinishRollout),
    ("crash loop after flip flips back", desired(), rolling("PostPromotion", True, T0),
     green(ready(crashlooping_pods=1)), T0 + S, d.FlipBack),
    ("lost readiness after flip flips back", desired(), rolling("PostPromotion", True, T0),
     green(ready(ready_replicas=0)), T0 + S, d.FlipBack),
    ("no flip back when the old colour is not warm", desired(),
     rolling("PostPromotion", True, T0),
     d.Observed(blue=ready("1", ready_replicas=0), green=ready(crashlooping_pods=1)), T0 + S,
     d.Wait),
]


@pytest.mark.parametrize(
    ("want", "status", "observed", "now", "expected"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_rollout_decision(want, status, observed, now, expected):
    assert isinstance(d.decide(want, status, observed, now), expected)


def test_unreachable_smoke_endpoint_is_retried_within_a_fraction_of_a_second():
    """A refused smoke call right after Ready is kube-proxy not having the endpoint yet: the
    retry comes well before the kubelet's next 1 s probe, not a whole second later."""
    action = d.decide(desired(), rolling(), green(ready(), DOWN), T0 + S)
    assert isinstance(action, d.Wait) and action.reason == "SmokeTestUnavailable"
    assert action.seconds == d.SMOKE_RETRY_SECONDS < 0.5


def test_first_deploy_targets_blue_with_desired_replicas():
    action = d.decide(desired("1", replicas=3), TryOnModelStatus(), d.Observed(), T0)
    assert action == d.StartRollout("blue", "1", H, 3)


def test_new_version_targets_the_colour_that_is_not_active():
    action = d.decide(desired("2"), steady(active_color="green"), d.Observed(), T0)
    assert isinstance(action, d.StartRollout) and action.color == "blue"


def test_deadline_abort_names_unschedulable_pods():
    view = ready(ready_replicas=0, unschedulable_pods=1,
                 unschedulable_message="0/3 nodes: Insufficient nvidia.com/gpu")
    action = d.decide(desired(), rolling(), green(view), T0 + 31 * S)
    assert isinstance(action, d.Abort)
    assert action.reason == "ProgressDeadlineExceeded"
    assert "Insufficient nvidia.com/gpu" in action.message


def test_deadline_abort_names_pods_that_cannot_get_their_image():
    view = ready(ready_replicas=0, image_unavailable_pods=1,
                 image_unavailable_message='ErrImageNeverPull: Container image "r:2" is not '
                                           "present with pull policy of Never")
    action = d.decide(desired(), rolling(), green(view), T0 + 31 * S)
    assert isinstance(action, d.Abort)
    assert action.reason == "ProgressDeadlineExceeded"
    assert action.message.endswith(
        '1 pod(s) cannot start: ErrImageNeverPull: Container image "r:2" is not present with '
        "pull policy of Never")


def test_flip_back_without_a_previous_colour_is_impossible_so_first_deploy_finishes():
    status = rolling("PostPromotion", True, T0).model_copy(update={
        "rollout": rolling("PostPromotion", True, T0).rollout.model_copy(
            update={"previous_color": None, "previous_version": None})})
    action = d.decide(desired(), status, green(ready(crashlooping_pods=1)), T0 + S)
    assert isinstance(action, d.FinishRollout)
