"""Metrics: known values on constructed images."""

from __future__ import annotations

import math

import pytest
import torch
from tryon_model.metrics import MetricAccumulator, per_sample_metrics, ssim_per_sample

pytestmark = pytest.mark.unit


def _img(value: float, n: int = 1, h: int = 16, w: int = 12) -> torch.Tensor:
    return torch.full((n, 3, h, w), value)


def test_identical_images() -> None:
    x = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = per_sample_metrics(x, x)
    assert torch.allclose(m["l1"], torch.zeros(2))
    assert torch.allclose(m["ssim"], torch.ones(2), atol=1e-5)
    assert torch.all(m["psnr"] == 100.0)


def test_l1_on_unit_scale() -> None:
    # -1 vs 1 in contract space is 0 vs 1 on the unit scale.
    assert per_sample_metrics(_img(-1.0), _img(1.0))["l1"].item() == pytest.approx(1.0)
    assert per_sample_metrics(_img(0.0), _img(0.5))["l1"].item() == pytest.approx(0.25)


@pytest.mark.parametrize(("a", "b"), [(0.2, 0.8), (0.5, 0.5), (0.0, 1.0)])
def test_ssim_of_constant_images_matches_the_formula(a: float, b: float) -> None:
    # No variance: SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim_per_sample(_img(a, h=20, w=20), _img(b, h=20, w=20)).item()
    assert got == pytest.approx(expected, rel=1e-4)


def test_ssim_is_symmetric_and_drops_with_noise() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 32, 24, generator=gen)
    small = (x + 0.05 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    large = (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    assert ssim_per_sample(x, small).item() == pytest.approx(ssim_per_sample(small, x).item())
    assert 1 > ssim_per_sample(x, small).item() > ssim_per_sample(x, large).item()


def test_masked_l1_only_sees_the_mask() -> None:
    pred, target = _img(-1.0, h=4, w=4), _img(-1.0, h=4, w=4)
    pred[..., :2, :] = 1.0  # wrong in the top half only
    top = torch.zeros(1, 1, 4, 4)
    top[..., :2, :] = 1
    m = per_sample_metrics(pred, target, top)
    assert m["masked_l1"].item() == pytest.approx(1.0)
    assert m["l1"].item() == pytest.approx(0.5)
    assert per_sample_metrics(pred, target, 1 - top)["masked_l1"].item() == pytest.approx(0.0)


def test_accumulator_skips_empty_masks_but_not_nan_outputs() -> None:
    acc = MetricAccumulator()
    pred, target = _img(0.0, n=2), _img(0.0, n=2)
    pred[1] = 1.0
    mask = torch.zeros(2, 1, 16, 12)
    mask[1] = 1
    acc.add(pred, target, mask)  # sample 0: empty mask, sample 1: error 0.5
    out = acc.result()
    assert out["masked_l1"] == pytest.approx(0.5)
    assert out["l1"] == pytest.approx(0.25)
    broken = MetricAccumulator()
    broken.add(torch.full((1, 3, 16, 12), float("nan")), _img(0.0), torch.ones(1, 1, 16, 12))
    assert all(math.isnan(broken.result()[k]) for k in ("l1", "masked_l1", "ssim"))
