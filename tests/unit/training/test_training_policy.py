"""The promotion decision, table-tested."""

from __future__ import annotations

import math

import pytest
from tryon_model.policy import PromotionPolicy, Scored, decide, relative_improvement

pytestmark = pytest.mark.unit

GOOD = {"l1": 0.050, "masked_l1": 0.100, "ssim": 0.700, "psnr": 20.0}
NAN = {"l1": math.nan, "masked_l1": math.nan, "ssim": math.nan, "psnr": math.nan}


def m(**changes: float) -> dict[str, float]:
    return {**GOOD, **changes}


CASES = [
    # id, candidate, production version, production metrics, force, reason, promote, forced, text
    ("first version", GOOD, None, None, False, None, True, False, "no production version yet"),
    ("first but NaN", NAN, None, None, False, None, False, False, "non-finite"),
    ("clearly better", m(l1=0.040), "1", GOOD, False, None, True, False, "passes"),
    ("exactly at margin", m(l1=0.049), "1", GOOD, False, None, True, False, "passes"),
    ("below margin", m(l1=0.0495), "1", GOOD, False, None, False, False, "l1 0.0495"),
    ("equal", GOOD, "1", GOOD, False, None, False, False, "needs >= +2.0%"),
    ("worse", m(l1=0.080), "1", GOOD, False, None, False, False, "refused against production v1"),
    ("guard ssim drops", m(l1=0.040, ssim=0.60), "1", GOOD, False, None, False, False, "ssim"),
    ("guard within tol", m(l1=0.040, ssim=0.695), "1", GOOD, False, None, True, False, "passes"),
    ("guard masked", m(l1=0.04, masked_l1=0.2), "1", GOOD, False, None, False, False, "masked_l1"),
    ("broken production", GOOD, "1", NAN, False, None, True, False, "non-finite"),
    ("nan candidate", NAN, "1", GOOD, False, None, False, False, "non-finite output"),
    ("forced", m(l1=0.080), "1", GOOD, True, "hotfix", True, True, "FORCED (hotfix)"),
    ("force no reason", m(l1=0.080), "1", GOOD, True, "  ", False, False, "--reason"),
    ("already prod", GOOD, "2", GOOD, False, None, False, False, "already production"),
    ("already prod forced", GOOD, "2", GOOD, True, "x", False, False, "already production"),
]


@pytest.mark.parametrize(
    ("candidate", "prod_version", "prod", "force", "reason", "promote", "forced", "text"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(candidate, prod_version, prod, force, reason, promote, forced, text) -> None:
    production = Scored(prod_version, prod) if prod_version is not None else None
    decision = decide(Scored("2", candidate), production, force=force, reason=reason)
    assert decision.promote is promote
    assert decision.forced is forced
    assert text in decision.summary
    if not promote:
        assert decision.failed_checks


def test_refusal_message_carries_both_metrics() -> None:
    decision = decide(Scored("3", m(l1=0.0812)), Scored("2", m(l1=0.0650)))
    assert "0.0812" in decision.summary and "0.0650" in decision.summary


def test_custom_policy() -> None:
    strict = PromotionPolicy(primary="ssim", margin=0.10, guards=())
    assert not decide(Scored("2", m(ssim=0.75)), Scored("1", GOOD), strict).promote
    assert decide(Scored("2", m(ssim=0.78, l1=0.9)), Scored("1", GOOD), strict).promote
    with pytest.raises(ValueError, match="unknown metric"):
        PromotionPolicy(primary="fid")
    with pytest.raises(ValueError):
        PromotionPolicy(margin=1.5)


@pytest.mark.parametrize(
    ("name", "cand", "prod", "expected"),
    [("l1", 0.09, 0.10, 0.1), ("l1", 0.11, 0.10, -0.1), ("ssim", 0.77, 0.70, 0.1)],
)
def test_relative_improvement(name, cand, prod, expected) -> None:
    assert relative_improvement(name, cand, prod) == pytest.approx(expected)
