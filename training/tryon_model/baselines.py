"""Reference outputs a try-on model has to beat, computed on the same split as the model.

- ``person unchanged``: the output is the person photo (perfect outside the try-on region);
- ``garment pasted on torso box``: the garment photo's foreground, cropped to its bounding box,
  resized into a fixed torso box and pasted over the person. The box is where the synthetic
  figures' tops sit on average (x 26-74%, y 21-49% of the image): a placement that ignores the
  person, which is what a model that did not learn placement would do at best.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import Tensor

from .data import Batch
from .metrics import MetricAccumulator

TORSO_BOX = (0.26, 0.74, 0.21, 0.49)  # x0, x1, y0, y1 as fractions of width and height
BASELINE_NAMES = ("person unchanged", "garment pasted on torso box")


def paste_on_torso(person: Tensor, garment: Tensor) -> Tensor:
    """(N, 3, H, W): each garment's foreground resized into the torso box of its person photo."""
    from tryon_renderer.placement import garment_foreground

    out = person.clone()
    _, _, height, width = person.shape
    x0, x1 = round(TORSO_BOX[0] * width), round(TORSO_BOX[1] * width)
    y0, y1 = round(TORSO_BOX[2] * height), round(TORSO_BOX[3] * height)
    fg = garment_foreground(garment) > 0.5
    for i in range(person.shape[0]):
        ys, xs = torch.nonzero(fg[i, 0], as_tuple=True)
        if ys.numel() == 0:
            continue
        crop = slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1)
        pixels = garment[i : i + 1, :, crop[0], crop[1]]
        shape = fg[i : i + 1, :, crop[0], crop[1]].float()
        size = (y1 - y0, x1 - x0)
        pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False)[0]
        shape = F.interpolate(shape, size=size, mode="nearest")[0] > 0.5
        region = out[i, :, y0:y1, x0:x1]
        out[i, :, y0:y1, x0:x1] = torch.where(shape, pixels, region)
    return out


def baseline_metrics(batch: Batch) -> dict[str, dict[str, float]]:
    """Metrics of both baselines on `batch`, keyed by `BASELINE_NAMES`."""
    outputs = (batch.person, paste_on_torso(batch.person, batch.garment))
    result: dict[str, dict[str, float]] = {}
    for name, output in zip(BASELINE_NAMES, outputs, strict=True):
        acc = MetricAccumulator()
        acc.add(output, batch.target, batch.mask)
        result[name] = acc.result()
    return result
