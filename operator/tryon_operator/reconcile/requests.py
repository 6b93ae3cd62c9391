"""Manual control: the one-shot request annotations a person (or ``tryonctl``) puts on a
TryOnModel, from being taken before anything decides to being removed after status is written.

Each request is consumed: once acted on, or once it can no longer apply, the operator removes the
annotation, so a forgotten ``promote=true`` cannot silently approve every later rollout. Whether
a request is done, pending or impossible is answered without I/O (``fulfilled_by``,
``promote_problem``, ``plan``), so the table tests can pin every case.
"""

from __future__ import annotations

from ..api.models import TryOnModelStatus
from ..api.vocabulary import (
    ANNOTATION_PROMOTE,
    ANNOTATION_RETRY,
    ANNOTATION_ROLLBACK,
    REQUEST_ANNOTATIONS,
)
from ..decide import decision as d
from .context import Facts, Step
from .events import Told

Outcome = tuple[str, str | None]  # annotation to remove, problem (None: carried out)


def fulfilled_by(action: d.Action, desired: d.Desired, status: TryOnModelStatus) -> set[str]:
    """The request annotations that ``action``, about to run on ``status``, carries out."""
    done: set[str] = set()
    rollout = status.rollout
    if (
        isinstance(action, d.Promote)
        and rollout is not None
        and desired.promote_requested_for in ("true", rollout.version)
    ):
        done.add(ANNOTATION_PROMOTE)
    if isinstance(action, d.Abort | d.FlipBack) and action.reason == d.MANUAL_ROLLBACK:
        done.add(ANNOTATION_ROLLBACK)
    return done


def promote_problem(request: str, desired: d.Desired, status: TryOnModelStatus) -> str | None:
    """Why ``tryon.dev/promote=<request>`` can no longer be carried out; None: keep waiting."""
    rollout = status.rollout
    if rollout is not None and rollout.phase != "PostPromotion":
        if request in ("true", rollout.version):
            return None
        return (
            f"cannot promote version {request}: the rollout in progress is of version "
            f"{rollout.version}"
        )
    if request == "true":
        return "nothing to promote: no rollout is waiting for promotion"
    if request == status.active_version:
        return f"version {request} already serves on {status.active_color}"
    if desired.version is None:
        return None  # the registry cannot say now; a rollout of it may yet start
    if request == desired.version and status.is_rejected(request, desired.template_hash):
        return f"cannot promote version {request}: it was rolled back; retry it first"
    return f"cannot promote version {request}: no rollout of it is in progress"


def take_retry(facts: Facts) -> tuple[TryOnModelStatus, str | None]:
    """Clears the rejection a ``tryon.dev/retry`` annotation names, before anything decides."""
    version = facts.ctx.annotations.get(ANNOTATION_RETRY)
    if version is None:
        return facts.status, None
    try:
        return facts.status.clearing_rejection(version.strip()), None
    except ValueError as err:
        return facts.status, str(err)


def plan(
    facts: Facts, desired: d.Desired, fulfilled: set[str], retry_problem: str | None
) -> list[Outcome]:
    """Which request annotations are done with, and why."""
    done: list[Outcome] = []
    for key in REQUEST_ANNOTATIONS:
        value = facts.ctx.annotations.get(key)
        if value is None:
            continue
        problem: str | None = None
        if key == ANNOTATION_RETRY:
            problem = retry_problem
        elif key not in fulfilled:
            if desired.paused:
                continue  # acted on once resumed
            if key == ANNOTATION_PROMOTE:
                problem = promote_problem(value.strip(), desired, facts.status)
            else:
                answer = d.manual_rollback(value.strip(), facts.status, facts.cluster.observed)
                problem = answer if isinstance(answer, str) else None
            if problem is None:
                continue  # still applicable: waits for the rollout
        done.append((key, problem))
    return done


def settle(step: Step, desired: d.Desired, done: list[Outcome]) -> None:
    """Removes each finished request annotation and says what became of it.

    Runs after status is written, so a crash in between repeats nothing: a request that was
    already carried out then reads as inapplicable and is removed with a Warning.
    """
    ctx = step.ctx
    for key, problem in done:
        value = ctx.annotations[key]
        step.fx.kube.remove_annotation(ctx.namespace, ctx.name, key)
        if problem is not None:
            step.tell(Told("Warning", "ManualRequestIgnored", f"{key}={value} ignored: {problem}"))
        elif key == ANNOTATION_RETRY:
            now_version = f" (now version {desired.version})" if desired.version else ""
            step.tell(
                Told(
                    "Normal",
                    "RetryRequested",
                    f"rejection of version {value} cleared on request; it is rolled out again "
                    f"while the model selector resolves to it{now_version}",
                    version=value,
                )
            )
