"""One function per rollout action, and ``carry_out`` to pick it. Each writes to the cluster,
tells what it did, and returns the new status."""

from __future__ import annotations

from dataclasses import replace
from typing import assert_never

from ..api.builders import build_deployment, build_hpa, build_service
from ..api.models import Color, RolloutState, TryOnModelStatus
from ..api.vocabulary import TAG_PROMOTED, TAG_REJECTED
from ..decide import decision as d
from .context import Step, must, with_rollout, without_rollout
from .events import Told
from .problems import evidence
from .promotion import ease_gpu_shortage, promote
from .resolve import first_seen
from .tags import tag

# What the rollout decision can ask to be carried out (the rest wait or are run in place).
Acting = (
    d.StartRollout
    | d.CancelRollout
    | d.Promote
    | d.ShrinkPreview
    | d.MakeRoom
    | d.Abort
    | d.ShrinkStandby
    | d.FlipBack
    | d.FinishRollout
)


def carry_out(step: Step, action: Acting) -> TryOnModelStatus:
    """Carries ``action`` out; mypy checks that every action has its function."""
    match action:
        case d.StartRollout():
            return start_rollout(step, action)
        case d.CancelRollout():
            return cancel_rollout(step, action)
        case d.Promote():
            return promote(step, action)
        case d.ShrinkPreview() | d.MakeRoom():
            return ease_gpu_shortage(step, action)
        case d.Abort():
            return abort(step, action)
        case d.ShrinkStandby():
            return shrink_standby(step, action)
        case d.FlipBack():
            return flip_back(step, action)
        case d.FinishRollout():
            return finish_rollout(step, action)
        case _:
            assert_never(action)


def start_rollout(step: Step, action: d.StartRollout) -> TryOnModelStatus:
    ctx, status = step.ctx, step.status
    if action.superseded is not None:
        why = f"replaced by version {action.version}"
        status = step.record(action.superseded, "Superseded", "Superseded", why)
        step.count("superseded")
    step.fx.kube.apply(
        build_deployment(
            ctx.spec,
            action.color,
            action.version,
            ctx.owner,
            tracking_uri=ctx.tracking_uri,
            replicas=action.replicas,
        )
    )
    rollout = RolloutState(
        phase="Progressing",
        color=action.color,
        version=action.version,
        template_hash=action.template_hash,
        replicas=action.replicas,
        started_at=step.now,
        seen_at=first_seen(status, action.version, step.now),
    )
    step.count("started")
    step.tell(
        Told(
            "Normal",
            "RolloutStarted",
            f"rolling out version {action.version} to {action.color} "
            f"({action.replicas} replica(s)); active is "
            f"{status.active_color or 'none'} (version {status.active_version or '-'})",
            version=action.version,
            color=action.color,
            previous_version=status.active_version,
            previous_color=status.active_color,
            evidence={
                "replicas": action.replicas,
                "templateHash": action.template_hash,
                "supersedes": action.superseded.version if action.superseded else None,
            },
        )
    )
    return status.model_copy(
        update={
            "rollout": rollout,
            "preview_color": action.color,
            "preview_version": action.version,
        }
    )


def cancel_rollout(step: Step, action: d.CancelRollout) -> TryOnModelStatus:
    rollout = must(step.status.rollout)
    step.scale(rollout.color, 0)
    step.count("cancelled")
    message = f"rollout of version {rollout.version} cancelled: {action.reason}"
    step.tell(step.about("Normal", "RolloutCancelled", message, evidence={"scaledTo": 0}))
    return without_rollout(step.record(rollout, "Cancelled", "Cancelled", action.reason))


def abort(step: Step, action: d.Abort) -> TryOnModelStatus:
    """Rejects a preview before promotion: traffic never left the active colour."""
    rollout = must(step.status.rollout)
    step.scale(rollout.color, 0)
    status = reject(step, rollout, action.reason, action.message)
    message = (
        f"version {rollout.version} on {rollout.color} rejected before promotion "
        f"({action.reason}): {action.message}; traffic stays on {status.active_color or 'none'}"
    )
    told = evidence(step.cluster, rollout.color, action.message)
    step.tell(
        step.about(
            "Warning", "RolledBack", message, previous=True, decision="reject", evidence=told
        )
    )
    return without_rollout(status)


def flip_back(step: Step, action: d.FlipBack) -> TryOnModelStatus:
    """After a flip: traffic back to the previous colour, the new one to 0, the version rejected.

    A shrunk warm standby takes the traffic at once and is grown back to its serving size in the
    same breath; the Service does not wait for the new pods.
    """
    ctx, rollout = step.ctx, must(step.status.rollout)
    previous: Color = must(rollout.previous_color)
    # Apply (not patch) so a Service deleted at the worst moment comes back pointing right.
    step.fx.kube.apply(build_service(ctx.spec, ctx.owner, color=previous, preview=False))
    shrunk = _grow_standby(step, action, previous)
    step.scale(rollout.color, 0)
    step = replace(step, status=_previous_serves(step.status, rollout))
    status = reject(step, rollout, action.reason, action.message + shrunk)
    told = evidence(step.cluster, rollout.color, action.message)
    if action.grow_to is not None:
        told |= {"warmPods": action.warm, "growingTo": action.grow_to}
    message = (
        f"version {rollout.version} {_why_flipped_back(action.reason)}; "
        f"traffic flipped back to {previous} (version {rollout.previous_version}){shrunk}"
    )
    step.tell(
        step.about(
            "Warning", "RolledBack", message, previous=True, decision="rollback", evidence=told
        )
    )
    return without_rollout(_serving_again(replace(step, status=status), rollout))


def _previous_serves(status: TryOnModelStatus, rollout: RolloutState) -> TryOnModelStatus:
    """The status with the colour the rollout replaced serving again, as it was promoted."""
    return status.model_copy(
        update={
            "active_color": rollout.previous_color,
            "active_version": rollout.previous_version,
            "active_template_hash": rollout.previous_template_hash,
            "active_renderer": rollout.previous_renderer,
        }
    )


def _serving_again(step: Step, rollout: RolloutState) -> TryOnModelStatus:
    """Tags the version traffic flipped back to as promoted again, so the registry says it
    serves."""
    if rollout.previous_version is None:
        return step.status
    note = (
        f"{step.ctx.namespace}/{step.ctx.name} serving again on {rollout.previous_color} at "
        f"{step.now.isoformat()} after version {rollout.version} was rolled back"
    )
    return tag(step.ctx, step.fx, step.status, rollout.previous_version, TAG_PROMOTED, note)


def _grow_standby(step: Step, action: d.FlipBack, color: Color) -> str:
    """Scales a shrunk standby back to its serving size (the HPA follows it); what to tell."""
    if action.grow_to is None:
        return ""
    ctx = step.ctx
    step.scale(color, action.grow_to)
    if ctx.spec.autoscaling.enabled and ctx.spec.autoscaling.metric == "cpu":
        step.fx.kube.apply(build_hpa(ctx.spec, ctx.owner, color=color))  # KEDA's: keep_scaler
    warm = action.warm if action.warm is not None else 0
    return (
        f"; it ran shrunk: flipped back to {warm} warm pod{'' if warm == 1 else 's'}, "
        f"growing to {action.grow_to}"
    )


def shrink_standby(step: Step, action: d.ShrinkStandby) -> TryOnModelStatus:
    """Right after the flip: the previous colour keeps only its warm standby for the window."""
    rollout = must(step.status.rollout)
    had = step.cluster.observed.color(action.color).replicas
    step.scale(action.color, action.replicas)
    window = step.ctx.spec.rollout.rollback_window_seconds
    step.tell(
        Told(
            "Normal",
            "StandbyShrunk",
            f"previous colour {action.color} (version {rollout.previous_version}) shrunk from "
            f"{had} to {action.replicas} warm pod(s) for the {window}s rollback window; a "
            f"failure of version {rollout.version} flips traffic back to them and grows them "
            f"to {action.serving}",
            version=rollout.previous_version,
            color=action.color,
            previous_version=rollout.version,
            previous_color=rollout.color,
            evidence={"replicas": action.replicas, "from": had, "serving": action.serving},
        )
    )
    return with_rollout(
        step.status, standby_replicas=action.replicas, standby_serving_replicas=action.serving
    )


def finish_rollout(step: Step, action: d.FinishRollout) -> TryOnModelStatus:
    rollout = must(step.status.rollout)
    if rollout.previous_color is not None and rollout.previous_color != rollout.color:
        step.scale(rollout.previous_color, 0)
        step.tell(
            Told(
                "Normal",
                "ScaledDown",
                f"previous colour {rollout.previous_color} (version "
                f"{rollout.previous_version}) scaled to 0",
                version=rollout.previous_version,
                color=rollout.previous_color,
                evidence={"scaledTo": 0},
            )
        )
    message = f"version {rollout.version} serves on {rollout.color}"
    status = step.record(rollout, "Promoted", "RolloutComplete", message)
    step.tell(step.about("Normal", "RolloutComplete", message, previous=True))
    return status.model_copy(update={"rollout": None})


def reject(step: Step, rollout: RolloutState, reason: str, message: str) -> TryOnModelStatus:
    """Records a failed rollout; its version is not tried again until the selector moves."""
    step.count("rolled_back")
    status = step.record(rollout, "RolledBack", reason, message)
    status = status.rejecting(rollout, step.fx.settings.rejected_limit)
    if rollout.version == status.active_version:
        return status  # its pod template was rejected; the model version is not to blame
    note = f"{step.ctx.namespace}/{step.ctx.name} at {step.now.isoformat()}: {reason}: {message}"
    return tag(step.ctx, step.fx, status, rollout.version, TAG_REJECTED, note)


def _why_flipped_back(reason: str) -> str:
    if reason == "ManualRollback":
        return "was rolled back by request after promotion (ManualRollback)"
    return f"failed after promotion ({reason})"
