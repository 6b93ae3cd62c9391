"""The operator's own scaling loop on a serving signal, for clusters without KEDA, from plain facts.

It follows the HPA's algorithm so that a colour behaves the same under either scaler: the
replicas wanted are the signal summed over the colour's pods divided by the per-pod target,
rounded up; within 10 % of the target nothing moves (the HPA's tolerance); up moves at once, at
most doubling or adding 4 pods per decision; down takes the highest recommendation of the
stabilisation window (300 s by default), and not before the loop has watched one whole window,
so a restarted or newly elected operator never scales in on a few seconds of quiet. During a
rollout and its rollback window scale-in is held (argo-rollouts#1864: a resize below the
scaler's count mid-rollout).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TOLERANCE = 0.1
MAX_UP_PODS = 4

Recommendation = tuple[float, int]  # (monotonic seconds, replicas)


@dataclass(frozen=True, kw_only=True)
class Reading:
    """One turn of the loop: the colour as it is and the signal Prometheus gave for it."""

    current: int  # the Deployment's spec.replicas
    ready: int  # its Ready pods, the ones the signal is averaged over
    total: float | None  # the signal summed over the colour's pods; None: no sample
    target: float  # per-pod average to hold the signal at
    min_replicas: int
    max_replicas: int
    hold_scale_in: bool = False  # a rollout or its rollback window is on


@dataclass(frozen=True)
class ScaleDecision:
    desired: int
    recommendation: int  # before stabilisation, for the history
    why: str  # in words, for the Event when ``desired`` differs from the current count


def recommend(reading: Reading) -> int:
    """Replicas this reading alone asks for, within the bounds."""
    low, high = reading.min_replicas, reading.max_replicas
    if reading.total is None or reading.ready == 0:
        return min(max(reading.current, low), high)  # no signal: neither up nor down
    per_pod = reading.total / reading.ready
    if abs(per_pod / reading.target - 1) <= TOLERANCE:
        wanted = reading.current
    else:
        wanted = math.ceil(reading.total / reading.target - 1e-9)
    return min(max(wanted, low), high)


def decide_replicas(
    reading: Reading,
    history: Sequence[Recommendation],
    *,
    now: float,
    watched_since: float,
    window: float,
) -> ScaleDecision:
    """The replicas to ask for now, given the recommendations of the last ``window`` seconds."""
    recommendation = recommend(reading)
    current = reading.current
    if recommendation > current:
        desired = min(recommendation, max(2 * current, current + MAX_UP_PODS))
        return ScaleDecision(desired, recommendation, _why(reading, "above"))
    in_window = [n for at, n in history if now - at <= window] + [recommendation]
    desired = min(current, max(in_window))
    if desired < current and now - watched_since < window:
        desired = current  # not watched a whole window yet
    if desired < current and reading.hold_scale_in:
        desired = current
    return ScaleDecision(desired, recommendation, _why(reading, "below"))


def _why(reading: Reading, side: str) -> str:
    if reading.total is None or reading.ready == 0:
        return "no sample of the signal"
    per_pod = reading.total / reading.ready
    return (
        f"{per_pod:.2f} per pod over {reading.ready} Ready pod(s), {side} the target "
        f"{reading.target:g}"
    )
