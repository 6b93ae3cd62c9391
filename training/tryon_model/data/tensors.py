"""Decoding samples into tensors that follow the renderer's model contract."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..progress import Progress
from .layout import CATEGORIES, DataError, Sample


@dataclass
class Batch:
    """Tensors for a set of samples, following the renderer's model contract."""

    person: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    garment: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    target: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    mask: torch.Tensor  # (N, 1, H, W) float32 in {0, 1}; all ones when the dataset has no masks
    category: torch.Tensor  # (N,) int64
    sample_ids: list[str]

    def __len__(self) -> int:
        return int(self.person.shape[0])

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(
            self.person[start:stop],
            self.garment[start:stop],
            self.target[start:stop],
            self.mask[start:stop],
            self.category[start:stop],
            self.sample_ids[start:stop],
        )

    def index(self, idx: torch.Tensor) -> Batch:
        ids = [self.sample_ids[int(i)] for i in idx]
        return Batch(
            self.person[idx],
            self.garment[idx],
            self.target[idx],
            self.mask[idx],
            self.category[idx],
            ids,
        )

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.person.to(device),
            self.garment.to(device),
            self.target.to(device),
            self.mask.to(device),
            self.category.to(device),
            self.sample_ids,
        )


def image_to_tensor(img: Image.Image, height: int, width: int) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 in [-1, 1] (contract normalisation: pixel / 127.5 - 1)."""
    img = img.convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> 8-bit RGB image (pixel = (y + 1) * 127.5)."""
    arr = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte()
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def load_mask(sample: Sample, height: int, width: int) -> torch.Tensor:
    """(1, H, W) float32 in {0, 1}; all ones when the sample has no mask."""
    if sample.mask is None:
        return torch.ones(1, height, width)
    with Image.open(sample.mask) as img:
        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
        if sample.mask_labels is not None:
            binary = np.isin(arr, np.array(sample.mask_labels))
        else:
            binary = arr > 127 if arr.max() > 1 else arr > 0
    small = Image.fromarray(binary.astype(np.uint8) * 255, mode="L")
    if small.size != (width, height):
        small = small.resize((width, height), Image.Resampling.NEAREST)
    return torch.from_numpy((np.asarray(small) > 127).astype(np.float32))[None]


def load_batch(
    samples: list[Sample],
    height: int,
    width: int,
    categories: tuple[str, ...] = CATEGORIES,
    label: str | None = None,
) -> Batch:
    """Decode and stack samples at (height, width)."""
    persons, garments, targets, masks, cats = [], [], [], [], []
    with Progress(len(samples), label or "loading", enabled=label is not None) as bar:
        for s in samples:
            with Image.open(s.person) as im:
                persons.append(image_to_tensor(im, height, width))
            with Image.open(s.garment) as im:
                garments.append(image_to_tensor(im, height, width))
            with Image.open(s.target) as im:
                targets.append(image_to_tensor(im, height, width))
            masks.append(load_mask(s, height, width))
            if s.category not in categories:
                raise DataError(f"sample {s.sample_id}: unknown category {s.category!r}")
            cats.append(categories.index(s.category))
            bar.update()
    if not samples:
        empty = torch.zeros(0, 3, height, width)
        return Batch(
            empty,
            empty,
            empty,
            torch.zeros(0, 1, height, width),
            torch.zeros(0, dtype=torch.int64),
            [],
        )
    return Batch(
        torch.stack(persons),
        torch.stack(garments),
        torch.stack(targets),
        torch.stack(masks),
        torch.tensor(cats, dtype=torch.int64),
        [s.sample_id for s in samples],
    )
