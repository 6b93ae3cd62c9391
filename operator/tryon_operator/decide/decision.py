"""The rollout state machine as a pure function: (desired, status, observed, now) -> next action.

Nothing here talks to a server; ``reconcile/reconciler.py`` carries the action out and calls back
in until the answer is to wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api.models import Color, GpuShortagePolicy, RolloutState, TryOnModelStatus, other_color
from ..observe.views import ColorView as ColorView
from ..observe.views import Observed as Observed
from ..observe.views import SmokeOutcome as SmokeOutcome
from .rollout_actions import WAITING as WAITING
from .rollout_actions import Abort as Abort
from .rollout_actions import Action as Action
from .rollout_actions import AwaitPromotion as AwaitPromotion
from .rollout_actions import CancelRollout as CancelRollout
from .rollout_actions import FinishRollout as FinishRollout
from .rollout_actions import FlipBack as FlipBack
from .rollout_actions import Hold as Hold
from .rollout_actions import MakeRoom as MakeRoom
from .rollout_actions import Promote as Promote
from .rollout_actions import RunSmokeTest as RunSmokeTest
from .rollout_actions import ShrinkPreview as ShrinkPreview
from .rollout_actions import ShrinkStandby as ShrinkStandby
from .rollout_actions import StartRollout as StartRollout
from .rollout_actions import Steady as Steady
from .rollout_actions import Wait as Wait

# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Desired:
    version: str | None  # None: the registry could not say; keep what runs
    template_hash: str
    replicas: int
    paused: bool = False
    auto_promote: bool = True
    promote_requested_for: str | None = None
    rollback_requested_for: str | None = None  # the tryon.dev/rollback annotation
    smoke_enabled: bool = True
    progress_deadline: timedelta = timedelta(seconds=600)
    scale_down_delay: timedelta = timedelta(seconds=300)
    post_promotion: timedelta = timedelta(seconds=120)
    gpu_shortage_policy: GpuShortagePolicy = "Wait"
    # spec.rollout.warmStandbyReplicas; None keeps the previous colour whole for the window.
    warm_standby_replicas: int | None = None
    autoscaled: bool = False  # an HPA sizes the active colour; replicas is its floor then

    @property
    def rollback_window(self) -> timedelta:
        """How long after the flip the previous colour is kept for an instant flip back."""
        return max(self.post_promotion, self.scale_down_delay)


# An unreachable smoke test (no watch event announces its return) is retried this often. The
# preview Service reaches a new pod once kube-proxy has programmed its endpoint, a moment after
# the pod turned Ready, and the first try usually comes before that (connection refused, at
# once): retried after 1 s, every flip waited a whole second there (bench/flip_timeline.py, pod
# Ready -> flip 1.10-1.12 s in 5 of 5 runs).
SMOKE_RETRY_SECONDS = 0.2
# Waits on the children (pods Ready, post-promotion health): their watch events wake the reconcile
# (runtime/wakeups.py), so this is only a safety net; deadlines and holds still end on time.
CHILD_POLL_SECONDS = 5.0


def decide(desired: Desired, status: TryOnModelStatus, observed: Observed, now: datetime) -> Action:
    """The next step of the blue/green rollout."""
    if desired.paused:
        return Hold("Paused", "spec.paused is true; no changes are made")
    if desired.rollback_requested_for is not None:
        manual = manual_rollback(desired.rollback_requested_for, status, observed)
        if not isinstance(manual, str):
            return manual
    rollout = status.rollout
    if rollout is None:
        return _decide_idle(desired, status)
    if rollout.phase == "PostPromotion":
        return _decide_post_promotion(desired, rollout, observed, now)
    return _decide_pre_promotion(desired, status, rollout, observed, now)


def _decide_idle(desired: Desired, status: TryOnModelStatus) -> Action:
    if desired.version is None:
        if status.active_color is None:
            return Hold("ModelUnresolved", "no model version resolved yet")
        return Steady()
    if (
        status.active_color is not None
        and desired.version == status.active_version
        and desired.template_hash == status.active_template_hash
    ):
        return Steady()
    if status.is_rejected(desired.version, desired.template_hash):
        return Hold(
            "VersionRejected",
            f"version {desired.version} was rolled back; it is not retried until the model "
            "selector points elsewhere or the rejection is cleared",
        )
    color: Color = other_color(status.active_color) if status.active_color else "blue"
    return StartRollout(color, desired.version, desired.template_hash, desired.replicas)


def _decide_pre_promotion(  # noqa: C901 - ordered guards, table-tested
    desired: Desired,
    status: TryOnModelStatus,
    rollout: RolloutState,
    observed: Observed,
    now: datetime,
) -> Action:
    target = (desired.version, desired.template_hash)
    if desired.version is not None and target != (rollout.version, rollout.template_hash):
        if status.active_color is not None and target == (
            status.active_version,
            status.active_template_hash,
        ):
            return CancelRollout("the desired version is the active one again")
        if status.is_rejected(desired.version, desired.template_hash):
            return CancelRollout(f"version {desired.version} is rejected")
        return StartRollout(
            rollout.color, desired.version, desired.template_hash, desired.replicas, rollout
        )
    preview = observed.color(rollout.color)
    if preview.crashlooping_pods > 0:
        return Abort(
            "CrashLoop",
            f"{preview.crashlooping_pods} pod(s) of {rollout.color} (version {rollout.version}) "
            "are crash-looping",
        )
    if rollout.phase == "AwaitingPromotion" and (rollout.smoke_passed or not desired.smoke_enabled):
        if preview.lost_readiness:
            return Abort("PreviewNotReady", f"{rollout.color} lost readiness before promotion")
        if _promotion_allowed(desired, rollout):
            return Promote(rollout.color)
        return AwaitPromotion()
    deadline = (rollout.progress_since or rollout.started_at) + desired.progress_deadline
    if preview.rolled_out(rollout.version, rollout.template_hash, rollout.replicas):
        smoke = observed.smoke
        smoke_passed = rollout.smoke_passed or (smoke is not None and smoke.passed)
        if desired.smoke_enabled and not smoke_passed:
            if smoke is None:
                return RunSmokeTest(rollout.color)
            if smoke.reachable and not smoke.passed:
                return Abort("SmokeTestFailed", smoke.message or "smoke test failed")
            if now >= deadline:
                return Abort("SmokeTestUnavailable", smoke.message or "smoke test unreachable")
            return Wait("SmokeTestUnavailable", SMOKE_RETRY_SECONDS, smoke.message)
        if _promotion_allowed(desired, rollout):
            return Promote(rollout.color)
        return AwaitPromotion()
    if rollout.phase == "Progressing" and preview.gpu_short_pods:
        step = _gpu_shortage_step(desired, status, rollout, observed)
        if step is not None:
            return step
    if preview.pods_refused_message:
        # The cluster's policy, not the model: wait (the ReplicaSet controller retries the
        # creates) past the deadline; the deadline counts again once pods are admitted.
        return Wait("PodsRefused", CHILD_POLL_SECONDS, preview.pods_refused_message)
    if now >= deadline:
        detail = (
            f"; {preview.unschedulable_pods} pod(s) unschedulable: {preview.unschedulable_message}"
            if preview.unschedulable_pods
            else ""
        )
        if preview.image_unavailable_pods:
            detail += (
                f"; {preview.image_unavailable_pods} pod(s) cannot start: "
                f"{preview.image_unavailable_message}"
            )
        return Abort(
            "ProgressDeadlineExceeded",
            f"{rollout.color} (version {rollout.version}) had {preview.ready_replicas}/"
            f"{rollout.replicas} Ready pods after {int(desired.progress_deadline.total_seconds())}s"
            f"{detail}",
        )
    remaining = (deadline - now).total_seconds()
    return Wait(
        "WaitingForPreview",
        min(CHILD_POLL_SECONDS, max(remaining, 0.1)),
        f"{preview.ready_replicas}/{rollout.replicas} pods Ready",
    )


def _gpu_shortage_step(
    desired: Desired, status: TryOnModelStatus, rollout: RolloutState, observed: Observed
) -> ShrinkPreview | MakeRoom | None:
    """The policy's answer to preview pods that cannot get a GPU; None means keep waiting.

    Both answers are idempotent against a stale view: they compare against what was already done
    (the preview's size, the room already made), so a repeat look does not shrink twice.
    """
    preview = observed.color(rollout.color)
    if desired.gpu_shortage_policy == "ShrinkPreview":
        fits = max(1, preview.scheduled_pods)
        if fits < rollout.replicas:
            return ShrinkPreview(rollout.color, fits)
        return None
    if desired.gpu_shortage_policy == "InPlace" and status.active_color is not None:
        active = observed.color(status.active_color)
        shortfall = rollout.replicas - preview.scheduled_pods
        more = min(shortfall - rollout.room_made, active.replicas)
        if more > 0:
            return MakeRoom(status.active_color, active.replicas - more, rollout.room_made + more)
    return None


def _promotion_allowed(desired: Desired, rollout: RolloutState) -> bool:
    return desired.auto_promote or desired.promote_requested_for in (rollout.version, "true")


def _decide_post_promotion(
    desired: Desired, rollout: RolloutState, observed: Observed, now: datetime
) -> Action:
    assert rollout.promoted_at is not None
    active = observed.color(rollout.color)
    if rollout.previous_color is not None:
        previous = observed.color(rollout.previous_color)
        failure: str | None = None
        if active.crashlooping_pods > 0:
            failure = "CrashLoop"
        elif active.exists and active.ready_replicas < min(active.replicas, rollout.replicas):
            failure = "LostReadiness"
        if failure and previous.ready_replicas > 0:
            return _flip_back(
                failure,
                f"{rollout.color} (version {rollout.version}) failed after promotion "
                f"({active.ready_replicas}/{active.replicas} Ready, "
                f"{active.crashlooping_pods} crash-looping); traffic returned to "
                f"{rollout.previous_color} (version {rollout.previous_version})",
                rollout,
                previous,
            )
    hold = desired.rollback_window
    if rollout.previous_color is None or now >= rollout.promoted_at + hold:
        return FinishRollout()
    shrink = _standby_shrink(desired, rollout, observed)
    if shrink is not None:
        return shrink
    remaining = (rollout.promoted_at + hold - now).total_seconds()
    return Wait("PostPromotion", min(CHILD_POLL_SECONDS, max(remaining, 0.1)))


def _standby_shrink(
    desired: Desired, rollout: RolloutState, observed: Observed
) -> ShrinkStandby | None:
    """Once per rollout, right after the flip: the previous colour down to its warm standby.

    Idempotent against a stale view: the rollout remembers that it shrank.
    """
    keep = desired.warm_standby_replicas
    if keep is None or rollout.previous_color is None or rollout.standby_replicas is not None:
        return None
    previous = observed.color(rollout.previous_color)
    if not previous.exists or previous.replicas <= keep:
        return None
    serving = max(desired.replicas, previous.replicas) if desired.autoscaled else desired.replicas
    return ShrinkStandby(rollout.previous_color, keep, serving)


def _flip_back(reason: str, message: str, rollout: RolloutState, warm: ColorView) -> FlipBack:
    """The flip back, told to grow the standby when it was shrunk and is short of its size."""
    serving = rollout.standby_serving_replicas
    if rollout.standby_replicas is None or serving is None or warm.replicas >= serving:
        return FlipBack(reason, message)
    return FlipBack(reason, message, warm=warm.ready_replicas, grow_to=serving)


MANUAL_ROLLBACK = "ManualRollback"


def manual_rollback(
    version: str, status: TryOnModelStatus, observed: Observed
) -> Abort | FlipBack | str:
    """What a person's rollback request for ``version`` means now: the action, or why none.

    Only a rollout can be rolled back here: before the flip it is aborted, after it traffic
    returns to the previous colour while that is still warm. Steady state has nothing warm to go
    back to; moving the registry pointer is the way then.
    """
    rollout = status.rollout
    if rollout is None or rollout.version != version:
        what = (
            f"the rollout in progress is of version {rollout.version}"
            if rollout is not None
            else f"no rollout is in progress (version {status.active_version or '-'} serves)"
        )
        return (
            f"cannot roll back version {version}: {what}; to serve an older version move the "
            "MLflow alias (`tryon-model rollback`) or pin spec.model.version"
        )
    if rollout.phase != "PostPromotion":
        return Abort(
            MANUAL_ROLLBACK,
            f"rollback of version {version} on {rollout.color} requested by a person "
            f"(rollout phase {rollout.phase})",
        )
    previous = rollout.previous_color
    if previous is None:
        return (
            f"cannot roll back version {version}: it is the first version deployed, there is "
            "no previous colour to return to"
        )
    warm = observed.color(previous)
    if not warm.exists or warm.ready_replicas < 1:
        return (
            f"cannot roll back version {version}: the previous colour {previous} (version "
            f"{rollout.previous_version}) is no longer warm ({warm.ready_replicas} pods Ready); "
            "move the MLflow alias (`tryon-model rollback`) or pin spec.model.version"
        )
    return _flip_back(
        MANUAL_ROLLBACK,
        f"rollback of version {version} on {rollout.color} requested by a person; traffic "
        f"returned to {previous} (version {rollout.previous_version})",
        rollout,
        warm,
    )
