"""Seeded synthetic try-on data in the ``tryon`` layout (``tryon-model data make``).

Synthetic data: every sample is drawn from ``numpy.random.default_rng([seed, index])``, so a sample
depends only on the seed and its index (not on how many are generated) and PNG bytes are identical
run to run. A figure (head, arms, torso, legs) wears its own top and trousers; the garment image
shows a new garment flat on a plain background; the target repaints the garment's region on the
body with the garment's texture mapped affinely from the flat image: learning it needs a warp.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..progress import Progress
from .layout import (
    CATEGORIES,
    DATASET_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GENERATOR_NAME,
    INDEX_COLUMNS,
    INDEX_FILE,
    SPLITS,
    DataError,
    Dataset,
    load_tryon,
)


def _texture_fn(rng: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A garment texture as a function of garment coordinates (u, v) in [0, 1]."""
    base = rng.integers(30, 226, size=3)
    second = rng.integers(30, 226, size=3)
    # Keep the two colours apart so the pattern is visible.
    while int(np.abs(base - second).sum()) < 120:
        second = rng.integers(30, 226, size=3)
    pattern = int(rng.integers(0, 4))  # 0 solid, 1 horizontal stripes, 2 vertical, 3 checks
    freq = int(rng.integers(2, 6))

    def texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        if pattern == 0:
            sel = np.zeros(u.shape, dtype=bool)
        elif pattern == 1:
            sel = np.floor(v * freq).astype(int) % 2 == 1
        elif pattern == 2:
            sel = np.floor(u * freq).astype(int) % 2 == 1
        else:
            sel = (np.floor(u * freq).astype(int) + np.floor(v * freq).astype(int)) % 2 == 1
        out = np.empty((*u.shape, 3), dtype=np.uint8)
        out[...] = base.astype(np.uint8)
        out[sel] = second.astype(np.uint8)
        return out

    return texture


def _shape(category: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Garment silhouette in its own unit square (u across, v down)."""
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if category == "upper":  # T-shirt: short sleeves over the top 30%, body in the middle 60%
        return inside & ((v < 0.3) | ((u >= 0.2) & (u <= 0.8)))
    if category == "lower":  # trousers: waistband, then two legs with a gap
        return inside & ((v < 0.15) | (np.abs(u - 0.5) >= 0.05))
    if category == "dress":  # A-line: widens towards the hem
        return inside & (np.abs(u - 0.5) <= 0.3 + 0.2 * v)
    raise ValueError(f"unknown category {category!r}")


@dataclass(frozen=True)
class _Box:
    x0: float
    x1: float
    y0: float
    y1: float

    def uv(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (xs - self.x0) / (self.x1 - self.x0), (ys - self.y0) / (self.y1 - self.y0)


def _paint(
    img: np.ndarray,
    box: _Box,
    category: str,
    texture: Callable[[np.ndarray, np.ndarray], np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Paint a garment into `img` inside `box`; returns the painted region."""
    u, v = box.uv(xs, ys)
    region = _shape(category, u, v)
    img[region] = texture(u, v)[region]
    return region


def render_sample(
    rng: np.random.Generator, height: int, width: int, category: str | None = None
) -> dict[str, Any]:
    """Draw one synthetic (person, garment, target, mask, category) example as uint8 arrays."""
    if category is None:
        category = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    ys = (ys + 0.5) / height
    xs = (xs + 0.5) / width
    aspect = height / width

    cx = rng.uniform(0.42, 0.58)
    s = rng.uniform(0.8, 1.0)
    top = rng.uniform(0.02, 0.06)
    skin = np.array(
        [(224, 172, 140), (198, 134, 96), (141, 85, 54), (241, 194, 160)][int(rng.integers(0, 4))],
        dtype=np.uint8,
    )
    bg_top = rng.integers(170, 250, size=3)
    bg_bottom = np.clip(bg_top - rng.integers(0, 40, size=3), 0, 255)
    person = bg_top[None, None, :] * (1 - ys[..., None]) + bg_bottom[None, None, :] * ys[..., None]
    person = person.astype(np.uint8)

    y_sh = top + 0.19 * s
    y_waist = top + 0.5 * s
    y_feet = min(top + 0.95 * s, 0.99)
    upper_box = _Box(cx - 0.27 * s, cx + 0.27 * s, y_sh, y_waist)
    lower_box = _Box(cx - 0.16 * s, cx + 0.16 * s, y_waist, y_feet)
    dress_box = _Box(cx - 0.27 * s, cx + 0.27 * s, y_sh, y_waist + 0.3 * s)
    boxes = {"upper": upper_box, "lower": lower_box, "dress": dress_box}

    # Arms and legs (skin) under the clothes, head on top.
    arms = (np.abs(xs - cx) <= 0.27 * s) & (np.abs(xs - cx) >= 0.17 * s)
    arms &= (ys >= y_sh) & (ys <= y_sh + 0.3 * s)
    legs = (np.abs(xs - cx) <= 0.15 * s) & (np.abs(xs - cx) >= 0.01) & (ys >= y_waist)
    legs &= ys <= y_feet
    person[arms | legs] = skin
    own_lower = _texture_fn(rng)
    own_upper = _texture_fn(rng)
    lower_region = _paint(person, lower_box, "lower", own_lower, xs, ys)
    upper_region = _paint(person, upper_box, "upper", own_upper, xs, ys)
    head = ((xs - cx) / aspect) ** 2 + (ys - (top + 0.1 * s)) ** 2 <= (0.08 * s) ** 2
    person[head] = skin

    # The new garment, flat and centred on a light background.
    new_texture = _texture_fn(rng)
    garment = np.full((height, width, 3), int(rng.integers(235, 256)), dtype=np.uint8)
    gw = rng.uniform(0.65, 0.9)
    gh = rng.uniform(0.55, 0.85)
    gx = 0.5 + rng.uniform(-0.04, 0.04)
    gy = 0.5 + rng.uniform(-0.04, 0.04)
    _paint(
        garment,
        _Box(gx - gw / 2, gx + gw / 2, gy - gh / 2, gy + gh / 2),
        category,
        new_texture,
        xs,
        ys,
    )

    # Ground truth: the person wearing the new garment.
    target = person.copy()
    if category == "dress":
        # Under a dress: bare arms and legs where the old top and trousers were.
        target[upper_region | lower_region] = skin
        changed = upper_region | lower_region
    else:
        changed = np.zeros_like(upper_region)
    region = _paint(target, boxes[category], category, new_texture, xs, ys)
    target[head] = skin
    mask = ((region | changed) & ~head).astype(np.uint8) * 255
    return {
        "person": person,
        "garment": garment,
        "target": target,
        "mask": mask,
        "category": category,
    }


def split_counts_for(count: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Integer split sizes; val and test get at least one sample each when count >= 3."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n_val = round(fractions[1] * count)
    n_test = round(fractions[2] * count)
    if count >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = count - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{count} samples leave no training data with fractions {fractions}")
    return {"train": n_train, "val": n_val, "test": n_test}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: with the same spec the PNG bytes are identical run to run."""

    count: int
    height: int = 64
    width: int = 48
    seed: int = 0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test


def make_synthetic(
    root: Path, spec: SyntheticSpec, overwrite: bool = False, show_progress: bool = True
) -> Dataset:
    """Generate a synthetic dataset under `root` in the ``tryon`` layout."""
    if spec.height < 16 or spec.width < 16:
        raise ValueError(f"image size must be at least 16x16, got {spec.height}x{spec.width}")
    counts = split_counts_for(spec.count, spec.fractions)
    root = Path(root)
    _prepare_root(root, overwrite)
    rows = _write_samples(root, spec, counts, show_progress)
    with open(root / INDEX_FILE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(INDEX_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "height": spec.height,
        "width": spec.width,
        "categories": list(CATEGORIES),
        "generator": {"name": GENERATOR_NAME, "seed": spec.seed, "count": spec.count},
        "splits": counts,
    }
    (root / DATASET_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return load_tryon(root)


def _prepare_root(root: Path, overwrite: bool) -> None:
    """Empty split folders under `root`; only an earlier tryon dataset may be replaced."""
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DataError(f"{root} exists and is not empty (use --overwrite to replace it)")
        if not (root / DATASET_FILE).exists():
            raise DataError(f"refusing to overwrite {root}: it is not a tryon dataset")
        shutil.rmtree(root)
    for split in SPLITS:
        for kind in ("person", "garment", "target", "mask"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)


def _write_samples(
    root: Path, spec: SyntheticSpec, counts: dict[str, int], show_progress: bool
) -> list[dict[str, str]]:
    """Render and save every sample; returns the index rows in sample order."""
    rows: list[dict[str, str]] = []
    split_of = ["train"] * counts["train"] + ["val"] * counts["val"] + ["test"] * counts["test"]
    with Progress(spec.count, "generating", enabled=None if show_progress else False) as bar:
        for index in range(spec.count):
            rng = np.random.default_rng([spec.seed, index])
            example = render_sample(rng, spec.height, spec.width)
            split = split_of[index]
            sample_id = f"{index:06d}"
            row = {"sample_id": sample_id, "split": split, "category": example["category"]}
            for kind in ("person", "garment", "target", "mask"):
                rel = f"{split}/{kind}/{sample_id}.png"
                mode = "L" if kind == "mask" else "RGB"
                Image.fromarray(example[kind], mode=mode).save(root / rel, optimize=False)
                row[kind] = rel
            rows.append(row)
            bar.update()
    return rows
