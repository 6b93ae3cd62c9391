"""Promotion policy: should a candidate version replace production? A pure function.

Rules, in order:

1. ``--force`` needs a non-empty reason; a forced promotion skips the metric gates (rules 4-6)
   but is recorded as forced, with the gates that failed.
2. The candidate must not already be production.
3. With no production version (empty registry, alias never set) the candidate is promoted if its
   metrics are finite.
4. Non-finite candidate metrics (NaN outputs) are refused.
5. Non-finite production metrics (a broken production model) let any finite candidate through.
6. The primary metric (default ``l1``) must improve by at least ``margin`` (relative, default 2%),
   and no guard metric (``masked_l1``, ``ssim``) may regress by more than ``guard_tolerance``
   (relative, default 1%).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .metrics import LOWER_IS_BETTER


@dataclass(frozen=True)
class PromotionPolicy:
    primary: str = "l1"
    margin: float = 0.02
    guards: tuple[str, ...] = ("masked_l1", "ssim")
    guard_tolerance: float = 0.01

    def __post_init__(self) -> None:
        for name in (self.primary, *self.guards):
            if name not in LOWER_IS_BETTER:
                raise ValueError(f"unknown metric {name!r}; known: {sorted(LOWER_IS_BETTER)}")
        if not 0 <= self.margin < 1 or not 0 <= self.guard_tolerance < 1:
            raise ValueError("margin and guard_tolerance must be in [0, 1)")


@dataclass(frozen=True)
class Decision:
    promote: bool
    forced: bool
    summary: str
    failed_checks: tuple[str, ...] = field(default_factory=tuple)
    passed_checks: tuple[str, ...] = field(default_factory=tuple)


def _finite(metrics: Mapping[str, float], names: tuple[str, ...]) -> bool:
    return all(name in metrics and math.isfinite(metrics[name]) for name in names)


def relative_improvement(name: str, candidate: float, production: float) -> float:
    """Positive when the candidate is better, as a fraction of the production value."""
    denom = max(abs(production), 1e-12)
    if LOWER_IS_BETTER[name]:
        return (production - candidate) / denom
    return (candidate - production) / denom


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def metric_gates(
    policy: PromotionPolicy, candidate: Mapping[str, float], production: Mapping[str, float]
) -> tuple[list[str], list[str]]:
    """Evaluate rules 6: returns (passed, failed) check descriptions."""
    passed: list[str] = []
    failed: list[str] = []
    name = policy.primary
    gain = relative_improvement(name, candidate[name], production[name])
    text = (
        f"{name} {_fmt(candidate[name])} vs production {_fmt(production[name])} "
        f"({gain:+.1%}, needs >= {policy.margin:+.1%})"
    )
    (passed if gain >= policy.margin else failed).append(text)
    for guard in policy.guards:
        if guard not in candidate or guard not in production:
            continue
        if not (math.isfinite(candidate[guard]) and math.isfinite(production[guard])):
            continue
        gain = relative_improvement(guard, candidate[guard], production[guard])
        text = (
            f"{guard} {_fmt(candidate[guard])} vs production {_fmt(production[guard])} "
            f"({gain:+.1%}, may not drop below {-policy.guard_tolerance:+.1%})"
        )
        (passed if gain >= -policy.guard_tolerance else failed).append(text)
    return passed, failed


@dataclass(frozen=True)
class Scored:
    """A version and its metrics on the evaluation split: one side of the comparison."""

    version: str
    metrics: Mapping[str, float]


def decide(
    candidate: Scored,
    production: Scored | None,
    policy: PromotionPolicy | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Decision:
    """Decide whether `candidate` may become production (see the module docstring).

    `production` is None when no version holds the alias yet.
    """
    policy = policy or PromotionPolicy()
    if force and not (reason and reason.strip()):
        return Decision(
            False,
            False,
            "--force needs --reason: say why the gates are overridden",
            ("force without reason",),
        )
    candidate_version = candidate.version
    production_version = production.version if production is not None else None
    if production_version is not None and str(candidate_version) == str(production_version):
        return Decision(
            False,
            False,
            f"version {candidate_version} is already production",
            ("already production",),
        )

    passed: list[str] = []
    failed: list[str] = []
    if not _finite(candidate.metrics, (policy.primary,)):
        failed.append(
            f"candidate {policy.primary} is {candidate.metrics.get(policy.primary)} "
            "(non-finite output)"
        )
    elif production is None:
        passed.append("no production version yet")
    elif not _finite(production.metrics, (policy.primary,)):
        passed.append(f"production {policy.primary} is non-finite; any finite candidate is better")
    else:
        passed, failed = metric_gates(policy, candidate.metrics, production.metrics)

    if not failed:
        return Decision(
            True, False, f"v{candidate_version} passes: " + "; ".join(passed), (), tuple(passed)
        )
    if force:
        return Decision(
            True,
            True,
            f"v{candidate_version} FORCED ({reason}) despite: " + "; ".join(failed),
            tuple(failed),
            tuple(passed),
        )
    against = f" against production v{production_version}" if production_version else ""
    return Decision(
        False,
        False,
        f"v{candidate_version} refused{against}: " + "; ".join(failed),
        tuple(failed),
        tuple(passed),
    )
