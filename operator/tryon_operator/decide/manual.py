"""Manual control: the one-shot request annotations a person (or ``tryonctl``) puts on a
TryOnModel, and pure answers to "is this request done, pending, or impossible?".

Each request is consumed: once acted on, or once it can no longer apply, the operator removes the
annotation, so a forgotten ``promote=true`` cannot silently approve every later rollout.
"""

from __future__ import annotations

from typing import Final

from ..api.models import TryOnModelStatus
from ..api.vocabulary import ANNOTATION_PROMOTE as ANNOTATION_PROMOTE
from ..api.vocabulary import ANNOTATION_RETRY as ANNOTATION_RETRY
from ..api.vocabulary import ANNOTATION_ROLLBACK as ANNOTATION_ROLLBACK
from ..api.vocabulary import REQUEST_ANNOTATIONS as REQUEST_ANNOTATIONS
from . import decision as d

EVENT_IGNORED: Final = "ManualRequestIgnored"
EVENT_RETRY: Final = "RetryRequested"


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
