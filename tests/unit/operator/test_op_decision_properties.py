"""Properties of the rollout decision that must hold for any input, checked with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tryon_operator.api.models import RolloutState, TryOnModelStatus
from tryon_operator.decide import decision as d

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
versions = st.sampled_from(["1", "2", "3"])
hashes = st.sampled_from(["h1", "h2"])
colors = st.sampled_from(["blue", "green"])


@st.composite
def views(draw):
    replicas = draw(st.integers(0, 3))
    return d.ColorView(
        exists=draw(st.booleans()), replicas=replicas, version=draw(versions),
        template_hash=draw(hashes), generation=1, observed_generation=draw(st.integers(0, 1)),
        status_replicas=draw(st.integers(0, 3)), updated_replicas=draw(st.integers(0, 3)),
        ready_replicas=draw(st.integers(0, 3)), available_replicas=draw(st.integers(0, 3)),
        crashlooping_pods=draw(st.integers(0, 1)))


@st.composite
def statuses(draw):
    active = draw(st.one_of(st.none(), colors))
    rollout = None
    if draw(st.booleans()):
        phase = draw(st.sampled_from(["Progressing", "AwaitingPromotion", "PostPromotion"]))
        color = draw(colors)
        promoted = T0 if phase == "PostPromotion" else None
        rollout = RolloutState(
            phase=phase, color=color, version=draw(versions), template_hash=draw(hashes),
            replicas=draw(st.integers(1, 3)), started_at=T0, smoke_passed=draw(st.booleans()),
            promoted_at=promoted,
            previous_color=draw(st.one_of(st.none(), colors)) if promoted else None)
    return TryOnModelStatus(
        active_color=active, active_version=draw(versions) if active else None,
        active_template_hash=draw(hashes) if active else None,
        rejected_versions=tuple(draw(st.lists(versions, max_size=2))), rollout=rollout)


@st.composite
def desireds(draw):
    return d.Desired(
        version=draw(st.one_of(st.none(), versions)), template_hash=draw(hashes),
        replicas=draw(st.integers(1, 3)), paused=draw(st.booleans()),
        auto_promote=draw(st.booleans()), smoke_enabled=draw(st.booleans()),
        progress_deadline=timedelta(seconds=30))


smoke = st.one_of(st.none(), st.builds(d.SmokeOutcome, passed=st.booleans(),
                                       reachable=st.booleans()))
nows = st.integers(0, 120).map(lambda s: T0 + timedelta(seconds=s))


@settings(max_examples=400, deadline=None)
@given(desireds(), statuses(), views(), views(), smoke, nows)
def test_paused_never_changes_anything(want, status, blue, green, outcome, now):
    paused = d.Desired(**{**want.__dict__, "paused": True})
    action = d.decide(paused, status, d.Observed(blue, green, outcome), now)
    assert isinstance(action, d.Hold)


@settings(max_examples=400, deadline=None)
@given(desireds(), statuses(), views(), views(), smoke, nows)
def test_a_rejected_version_is_never_started(want, status, blue, green, outcome, now):
    action = d.decide(want, status, d.Observed(blue, green, outcome), now)
    if isinstance(action, d.StartRollout) and action.version != status.active_version:
        assert action.version not in status.rejected_versions


@settings(max_examples=400, deadline=None)
@given(desireds(), statuses(), views(), views(), smoke, nows)
def test_traffic_never_moves_to_a_colour_that_failed_its_smoke_test(want, status, blue, green,
                                                                   outcome, now):
    action = d.decide(want, status, d.Observed(blue, green, outcome), now)
    if isinstance(action, d.Promote) and want.smoke_enabled and status.rollout is not None \
            and not status.rollout.smoke_passed:
        assert outcome is not None and outcome.passed


@settings(max_examples=400, deadline=None)
@given(desireds(), statuses(), views(), views(), smoke, nows)
def test_a_new_rollout_never_targets_the_active_colour(want, status, blue, green, outcome, now):
    action = d.decide(want, status, d.Observed(blue, green, outcome), now)
    if isinstance(action, d.StartRollout) and status.rollout is None:
        assert action.color != status.active_color
