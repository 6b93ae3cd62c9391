"""What the rollout decision (``decision.py``) can answer with: one frozen value per action, each
carrying its reason and message. ``reconcile/actions.carry_out`` picks the function that carries
each out."""

from __future__ import annotations

from dataclasses import dataclass

from ..api.models import Color, RolloutState


@dataclass(frozen=True)
class Hold:
    """Nothing may change now (paused, model unknown, version rejected, awaiting a person)."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class Steady:
    """The active colour serves what is desired; nothing to do."""


@dataclass(frozen=True)
class Wait:
    """Something is in progress; look again in ``seconds``."""

    reason: str
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class StartRollout:
    color: Color
    version: str
    template_hash: str
    replicas: int
    superseded: RolloutState | None = None


@dataclass(frozen=True)
class CancelRollout:
    """The desired state went back to what is active: drop the preview without blame."""

    reason: str


@dataclass(frozen=True)
class RunSmokeTest:
    color: Color


@dataclass(frozen=True)
class ShrinkPreview:
    """GPU shortage, policy ShrinkPreview: run the preview with the pods that fit."""

    color: Color
    replicas: int


@dataclass(frozen=True)
class MakeRoom:
    """GPU shortage, policy InPlace: give up active pods so the preview's pods fit."""

    color: Color
    replicas: int
    room_made: int


@dataclass(frozen=True)
class AwaitPromotion:
    """Preview is healthy and tested; ``autoPromote: false`` waits for a person."""


@dataclass(frozen=True)
class Promote:
    color: Color


@dataclass(frozen=True)
class Abort:
    """Roll back before the flip: traffic never left the active colour."""

    reason: str
    message: str


@dataclass(frozen=True)
class ShrinkStandby:
    """Right after the flip: the previous colour keeps only ``replicas`` warm pods for the window.

    ``serving`` is the size it grows back to if traffic flips back to it.
    """

    color: Color
    replicas: int
    serving: int


@dataclass(frozen=True)
class FlipBack:
    """Roll back after the flip: traffic returns to the previous colour, still warm.

    With a shrunk warm standby, ``warm`` is the pods Ready on it when traffic returns and
    ``grow_to`` the serving size it is scaled back to (the flip does not wait for them).
    """

    reason: str
    message: str
    warm: int | None = None
    grow_to: int | None = None


@dataclass(frozen=True)
class FinishRollout:
    """The post-promotion watch and the scale-down delay are over: scale the old colour to 0."""


Action = (
    Hold
    | Steady
    | Wait
    | StartRollout
    | CancelRollout
    | RunSmokeTest
    | ShrinkPreview
    | MakeRoom
    | AwaitPromotion
    | Promote
    | Abort
    | ShrinkStandby
    | FlipBack
    | FinishRollout
)


WAITING = (Hold, Steady, Wait, AwaitPromotion)
