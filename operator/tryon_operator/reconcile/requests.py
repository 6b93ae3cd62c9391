"""The life of a manual request annotation: taken before anything decides, removed after status
is written once it was carried out or can no longer apply."""

from __future__ import annotations

from ..api.models import TryOnModelStatus
from ..api.vocabulary import ANNOTATION_PROMOTE, ANNOTATION_RETRY, REQUEST_ANNOTATIONS
from ..decide import decision as d
from ..decide.manual import EVENT_IGNORED, EVENT_RETRY, promote_problem
from .context import Step
from .events import Told

Outcome = tuple[str, str | None]  # annotation to remove, problem (None: carried out)


def take_retry(step: Step) -> tuple[TryOnModelStatus, str | None]:
    """Clears the rejection a ``tryon.dev/retry`` annotation names, before anything decides."""
    version = step.ctx.annotations.get(ANNOTATION_RETRY)
    if version is None:
        return step.status, None
    try:
        return step.status.clearing_rejection(version.strip()), None
    except ValueError as err:
        return step.status, str(err)


def outcomes(
    step: Step, desired: d.Desired, fulfilled: set[str], retry_problem: str | None
) -> list[Outcome]:
    """Which request annotations are done with, and why (pure)."""
    done: list[Outcome] = []
    for key in REQUEST_ANNOTATIONS:
        value = step.ctx.annotations.get(key)
        if value is None:
            continue
        problem: str | None = None
        if key == ANNOTATION_RETRY:
            problem = retry_problem
        elif key not in fulfilled:
            if desired.paused:
                continue  # acted on once resumed
            if key == ANNOTATION_PROMOTE:
                problem = promote_problem(value.strip(), desired, step.status)
            else:
                answer = d.manual_rollback(value.strip(), step.status, step.cluster.observed)
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
            step.tell(Told("Warning", EVENT_IGNORED, f"{key}={value} ignored: {problem}"))
        elif key == ANNOTATION_RETRY:
            now_version = f" (now version {desired.version})" if desired.version else ""
            step.tell(
                Told(
                    "Normal",
                    EVENT_RETRY,
                    f"rejection of version {value} cleared on request; it is rolled out again "
                    f"while the model selector resolves to it{now_version}",
                    version=value,
                )
            )
