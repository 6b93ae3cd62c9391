"""The GPU-shortage policy as decisions: Wait, ShrinkPreview, InPlace; safe on stale views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tryon_operator.api.models import RolloutState, TryOnModelStatus
from tryon_operator.decide import decision as d
from tryon_operator.registry.cache import TtlCache

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
H = "hash1"


def desired(policy: str) -> d.Desired:
    return d.Desired(version="2", template_hash=H, replicas=3, gpu_shortage_policy=policy,  # type: ignore[arg-type]
                     progress_deadline=timedelta(seconds=60))


def rolling(replicas: int = 3, room_made: int = 0, active: str | None = "blue") -> TryOnModelStatus:
    rollout = RolloutState(phase="Progressing", color="green", version="2", template_hash=H,
                           replicas=replicas, started_at=T0, room_made=room_made)
    if active is None:
        return TryOnModelStatus(rollout=rollout)
    return TryOnModelStatus(active_color=active, active_version="1", active_template_hash=H,
                            rollout=rollout)


def preview(replicas: int = 3, scheduled: int = 1, short: int = 2) -> d.ColorView:
    return d.ColorView(exists=True, replicas=replicas, version="2", template_hash=H,
                       status_replicas=replicas, updated_replicas=replicas,
                       ready_replicas=scheduled, available_replicas=scheduled,
                       unschedulable_pods=short, gpu_short_pods=short, scheduled_pods=scheduled,
                       unschedulable_message="0/3 nodes are available: Insufficient nvidia.com/gpu")


def active(replicas: int = 3) -> d.ColorView:
    return d.ColorView(exists=True, replicas=replicas, version="1", template_hash=H,
                       status_replicas=replicas, updated_replicas=replicas,
                       ready_replicas=replicas, available_replicas=replicas)


def decide(policy: str, status: TryOnModelStatus, view: d.ColorView,
           now: datetime = T0 + timedelta(seconds=5), blue: d.ColorView | None = None) -> d.Action:
    return d.decide(desired(policy), status, d.Observed(blue=blue or active(), green=view), now)


def test_wait_policy_keeps_waiting_for_gpus():
    assert isinstance(decide("Wait", rolling(), preview()), d.Wait)


def test_shrink_preview_runs_the_preview_with_the_pods_that_got_gpus():
    assert decide("ShrinkPreview", rolling(), preview(scheduled=1, short=2)) == d.ShrinkPreview(
        "green", 1)


def test_shrink_preview_keeps_one_pod_when_none_got_a_gpu():
    assert decide("ShrinkPreview", rolling(), preview(scheduled=0, short=3)) == d.ShrinkPreview(
        "green", 1)


def test_shrink_preview_does_not_shrink_again_on_a_stale_view():
    # The Deployment is already at 1; pending pods from before the shrink still show up.
    assert isinstance(decide("ShrinkPreview", rolling(replicas=1), preview(scheduled=1, short=2)),
                      d.Wait)


def test_in_place_gives_up_as_many_active_pods_as_the_preview_lacks():
    assert decide("InPlace", rolling(), preview(scheduled=1, short=2)) == d.MakeRoom("blue", 1, 2)


def test_in_place_does_not_give_up_more_on_a_stale_view():
    status = rolling(room_made=2)
    assert isinstance(decide("InPlace", status, preview(scheduled=1, short=2), blue=active(1)),
                      d.Wait)


def test_in_place_without_an_active_colour_waits():
    assert isinstance(decide("InPlace", rolling(active=None), preview()), d.Wait)


@pytest.mark.parametrize("policy", ["Wait", "ShrinkPreview", "InPlace"])
def test_every_policy_still_rolls_back_at_the_progress_deadline(policy):
    status = rolling(replicas=1, room_made=3)
    action = decide(policy, status, preview(replicas=1, scheduled=0, short=1),
                    now=T0 + timedelta(seconds=61), blue=active(0))
    assert isinstance(action, d.Abort) and action.reason == "ProgressDeadlineExceeded"
    assert "unschedulable" in action.message


def test_a_shortage_that_is_not_about_gpus_is_left_to_the_deadline():
    view = preview()
    view = d.ColorView(**{**view.__dict__, "gpu_short_pods": 0})
    assert isinstance(decide("ShrinkPreview", rolling(), view), d.Wait)


def test_gpu_capacity_is_read_once_per_node_selector_within_its_ttl():
    now = [0.0]
    reads: list[str] = []
    recent = TtlCache[str](2.0, monotonic=lambda: now[0])

    def read(answer: str):
        def go() -> str:
            reads.append(answer)
            return answer
        return go

    assert recent.get("pool-a", read("a1")) == "a1"
    now[0] = 1.5
    assert recent.get("pool-a", read("a2")) == "a1"
    assert recent.get("pool-b", read("b1")) == "b1"
    now[0] = 2.5
    assert recent.get("pool-a", read("a3")) == "a3"
    assert reads == ["a1", "b1", "a3"]
