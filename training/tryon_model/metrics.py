"""Image-quality metrics for try-on outputs.

Inputs follow the model contract: (N, 3, H, W) tensors in [-1, 1]. Metrics are computed on the
[0, 1] scale so numbers read the same as in most papers:

- ``l1``: mean absolute error over all pixels and channels (lower is better);
- ``masked_l1``: mean absolute error inside the try-on mask only, i.e. on the garment region the
  model had to change (lower is better); samples with an empty mask are skipped;
- ``ssim``: structural similarity, Gaussian window 11 (shrunk to fit tiny images), sigma 1.5,
  constants K1=0.01, K2=0.03, per channel, averaged (higher is better);
- ``psnr``: peak signal-to-noise ratio in dB, capped at 100 (higher is better).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor

LOWER_IS_BETTER: dict[str, bool] = {"l1": True, "masked_l1": True, "ssim": False, "psnr": False}
METRIC_NAMES: tuple[str, ...] = ("l1", "masked_l1", "ssim", "psnr")
PSNR_CAP = 100.0


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped (the renderer clamps too)."""
    return ((x.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _gaussian_window(size: int, sigma: float, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_per_sample(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """SSIM of each pair in [0, 1]-scaled batches (N, C, H, W) -> (N,)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    _, channels, height, width = a.shape
    size = min(window, height, width)
    if size % 2 == 0:
        size -= 1
    kernel = _gaussian_window(size, sigma, a.device)
    kernel = kernel.expand(channels, 1, size, size).contiguous()
    c1, c2 = 0.01**2, 0.03**2
    a, b = a.float(), b.float()

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, kernel, groups=channels)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).mean(dim=(1, 2, 3))


def per_sample_metrics(
    pred: Tensor, target: Tensor, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """Per-sample metrics for contract-scaled tensors; `mask` is (N, 1, H, W) in {0, 1}."""
    p, t = to_unit(pred), to_unit(target)
    err = (p - t).abs()
    l1 = err.mean(dim=(1, 2, 3))
    if mask is None:
        mask = torch.ones_like(p[:, :1])
    m = mask.float()
    area = m.sum(dim=(1, 2, 3)) * p.shape[1]
    masked_sum = (err * m).sum(dim=(1, 2, 3))
    masked_l1 = torch.where(
        area > 0, masked_sum / area.clamp_min(1.0), torch.full_like(area, float("nan"))
    )
    mse = (err**2).mean(dim=(1, 2, 3))
    psnr = torch.where(
        mse > 0, 10 * torch.log10(1.0 / mse.clamp_min(1e-12)), torch.full_like(mse, PSNR_CAP)
    ).clamp(max=PSNR_CAP)
    return {"l1": l1, "masked_l1": masked_l1, "ssim": ssim_per_sample(p, t), "psnr": psnr}


class MetricAccumulator:
    """Collects per-sample metrics over batches and averages them (NaN entries skipped)."""

    def __init__(self) -> None:
        self._values: dict[str, list[Tensor]] = {name: [] for name in METRIC_NAMES}

    def add(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        values = per_sample_metrics(pred, target, mask)
        has_mask = torch.ones(pred.shape[0], dtype=torch.bool, device=pred.device)
        if mask is not None:
            has_mask = mask.flatten(1).sum(dim=1) > 0
        for name, per_sample in values.items():
            if name == "masked_l1":
                per_sample = per_sample[has_mask]
            self._values[name].append(per_sample.detach().cpu())

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, chunks in self._values.items():
            if not chunks:
                out[name] = math.nan
                continue
            values = torch.cat(chunks)
            # A NaN output image makes the average NaN: a broken model must not look good.
            out[name] = float(values.mean()) if values.numel() else math.nan
        return out


def is_better(name: str, candidate: float, reference: float) -> bool:
    if LOWER_IS_BETTER[name]:
        return candidate < reference
    return candidate > reference
