"""One function per rollout action; ``ACTIONS`` maps each action type to the function that
carries it out. Each writes to the cluster, tells what it did, and returns the new status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api.builders import build_deployment, build_hpa, build_service, deployment_name
from ..api.models import Color, RolloutState, TryOnModelStatus
from ..api.vocabulary import TAG_PROMOTED, TAG_REJECTED
from ..decide import decision as d
from .context import Step
from .events import Told
from .history import evidence, must, record, with_rollout, without_rollout
from .promotion import ease_gpu_shortage, promote
from .resolve import first_seen
from .tags import tag

Carry = Callable[[Step, Any], TryOnModelStatus]


def start_rollout(step: Step, action: d.StartRollout) -> TryOnModelStatus:
    ctx, fx, status, now = step.ctx, step.fx, step.status, step.now
    rollouts = fx.metrics.rollouts
    if action.superseded is not None:
        why = ("Superseded", f"replaced by version {action.version}")
        status = record(
            status, action.superseded, "Superseded", why, now, fx.settings.history_limit
        )
        rollouts.labels(ctx.namespace, ctx.name, "superseded").inc()
    fx.kube.apply(
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
        started_at=now,
        seen_at=first_seen(status, action.version, now),
    )
    rollouts.labels(ctx.namespace, ctx.name, "started").inc()
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
    ctx, fx = step.ctx, step.fx
    rollout = must(step.status.rollout)
    fx.kube.scale(ctx.namespace, deployment_name(ctx.name, rollout.color), 0)
    fx.metrics.rollouts.labels(ctx.namespace, ctx.name, "cancelled").inc()
    step.tell(
        Told(
            "Normal",
            "RolloutCancelled",
            f"rollout of version {rollout.version} cancelled: {action.reason}",
            version=rollout.version,
            color=rollout.color,
            evidence={"scaledTo": 0},
        )
    )
    why = ("Cancelled", action.reason)
    status = record(step.status, rollout, "Cancelled", why, step.now, fx.settings.history_limit)
    return without_rollout(status)


def abort(step: Step, action: d.Abort) -> TryOnModelStatus:
    """Rejects a preview before promotion: traffic never left the active colour."""
    ctx = step.ctx
    rollout = must(step.status.rollout)
    step.fx.kube.scale(ctx.namespace, deployment_name(ctx.name, rollout.color), 0)
    status = reject(step, rollout, (action.reason, action.message))
    step.tell(
        Told(
            "Warning",
            "RolledBack",
            f"version {rollout.version} on {rollout.color} rejected before promotion "
            f"({action.reason}): {action.message}; traffic stays on "
            f"{status.active_color or 'none'}",
            decision="reject",
            version=rollout.version,
            color=rollout.color,
            previous_version=status.active_version,
            previous_color=status.active_color,
            evidence=evidence(step.cluster, rollout.color, action.message),
        )
    )
    return without_rollout(status)


def flip_back(step: Step, action: d.FlipBack) -> TryOnModelStatus:
    """After a flip: traffic back to the previous colour, the new one to 0, the version rejected.

    A shrunk warm standby takes the traffic at once and is grown back to its serving size in the
    same breath; the Service does not wait for the new pods.
    """
    ctx, fx = step.ctx, step.fx
    rollout = must(step.status.rollout)
    previous: Color = must(rollout.previous_color)
    # Apply (not patch) so a Service deleted at the worst moment comes back pointing right.
    fx.kube.apply(build_service(ctx.spec, ctx.owner, color=previous, preview=False))
    shrunk = _grow_standby(step, action, previous)
    fx.kube.scale(ctx.namespace, deployment_name(ctx.name, rollout.color), 0)
    status = step.status.model_copy(
        update={
            "active_color": previous,
            "active_version": rollout.previous_version,
            "active_template_hash": rollout.previous_template_hash,
            "active_renderer": rollout.previous_renderer,
        }
    )
    status = reject(step, rollout, (action.reason, action.message + shrunk), status)
    told = evidence(step.cluster, rollout.color, action.message)
    if action.grow_to is not None:
        told |= {"warmPods": action.warm, "growingTo": action.grow_to}
    step.tell(
        Told(
            "Warning",
            "RolledBack",
            f"version {rollout.version} {_why_flipped_back(action.reason)}; "
            f"traffic flipped back to {previous} (version {rollout.previous_version}){shrunk}",
            decision="rollback",
            version=rollout.version,
            color=rollout.color,
            previous_version=rollout.previous_version,
            previous_color=previous,
            evidence=told,
        )
    )
    if rollout.previous_version is not None:
        note = (
            f"{ctx.namespace}/{ctx.name} serving again on {previous} at "
            f"{step.now.isoformat()} after version {rollout.version} was rolled back"
        )
        status = tag(ctx, fx, status, (rollout.previous_version, TAG_PROMOTED, note))
    return without_rollout(status)


def _grow_standby(step: Step, action: d.FlipBack, color: Color) -> str:
    """Scales a shrunk standby back to its serving size (the HPA follows it); what to tell."""
    if action.grow_to is None:
        return ""
    ctx, kube = step.ctx, step.fx.kube
    kube.scale(ctx.namespace, deployment_name(ctx.name, color), action.grow_to)
    if ctx.spec.autoscaling.enabled and ctx.spec.autoscaling.metric == "cpu":
        kube.apply(build_hpa(ctx.spec, ctx.owner, color=color))  # KEDA's: keep_scaler
    warm = action.warm if action.warm is not None else 0
    return (
        f"; it ran shrunk: flipped back to {warm} warm pod{'' if warm == 1 else 's'}, "
        f"growing to {action.grow_to}"
    )


def shrink_standby(step: Step, action: d.ShrinkStandby) -> TryOnModelStatus:
    """Right after the flip: the previous colour keeps only its warm standby for the window."""
    ctx, spec = step.ctx, step.ctx.spec
    rollout = must(step.status.rollout)
    had = step.cluster.observed.color(action.color).replicas
    step.fx.kube.scale(ctx.namespace, deployment_name(ctx.name, action.color), action.replicas)
    window = spec.rollout.rollback_window_seconds
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
    ctx, fx = step.ctx, step.fx
    rollout = must(step.status.rollout)
    if rollout.previous_color is not None and rollout.previous_color != rollout.color:
        fx.kube.scale(ctx.namespace, deployment_name(ctx.name, rollout.previous_color), 0)
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
    status = record(
        step.status,
        rollout,
        "Promoted",
        ("RolloutComplete", message),
        step.now,
        fx.settings.history_limit,
    )
    step.tell(
        Told(
            "Normal",
            "RolloutComplete",
            message,
            version=rollout.version,
            color=rollout.color,
            previous_version=rollout.previous_version,
            previous_color=rollout.previous_color,
        )
    )
    return status.model_copy(update={"rollout": None})


def reject(
    step: Step,
    rollout: RolloutState,
    why: tuple[str, str],
    status: TryOnModelStatus | None = None,
) -> TryOnModelStatus:
    """Records a failed rollout; its version is not tried again until the selector moves."""
    ctx, fx = step.ctx, step.fx
    status = step.status if status is None else status
    reason, message = why
    fx.metrics.rollouts.labels(ctx.namespace, ctx.name, "rolled_back").inc()
    status = record(status, rollout, "RolledBack", why, step.now, fx.settings.history_limit)
    status = status.rejecting(rollout, fx.settings.rejected_limit)
    if rollout.version == status.active_version:
        return status  # its pod template was rejected; the model version is not to blame
    note = f"{ctx.namespace}/{ctx.name} at {step.now.isoformat()}: {reason}: {message}"
    return tag(ctx, fx, status, (rollout.version, TAG_REJECTED, note))


def _why_flipped_back(reason: str) -> str:
    if reason == "ManualRollback":
        return "was rolled back by request after promotion (ManualRollback)"
    return f"failed after promotion ({reason})"


ACTIONS: dict[type[d.Action], Carry] = {
    d.StartRollout: start_rollout,
    d.CancelRollout: cancel_rollout,
    d.Promote: promote,
    d.ShrinkPreview: ease_gpu_shortage,
    d.MakeRoom: ease_gpu_shortage,
    d.Abort: abort,
    d.ShrinkStandby: shrink_standby,
    d.FlipBack: flip_back,
    d.FinishRollout: finish_rollout,
}
