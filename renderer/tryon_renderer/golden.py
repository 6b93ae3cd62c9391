"""Golden smoke inputs and reference outputs shipped with every model version.

Why: the operator must decide, before flipping traffic, whether a freshly started renderer
produces sane images with *this* model. The model version carries its own small test set
(inputs + the reference outputs computed when it was packaged) so the check needs no external
data and compares like with like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from .contract import ModelContract

GOLDEN_DIR = "golden"
GOLDEN_INDEX = "golden.json"


class GoldenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person: str
    garment: str
    category: str
    reference: str


class GoldenIndex(BaseModel):
    """golden/golden.json: the cases plus the thresholds the smoke test applies."""

    model_config = ConfigDict(extra="forbid")
    cases: list[GoldenCase] = Field(min_length=1)
    tolerance: float = Field(0.03, gt=0, le=1)
    min_std: float = Field(2.0, ge=0)
    latency_budget_ms: float = Field(5000.0, gt=0)


@dataclass
class GoldenSet:
    """Golden cases loaded into memory (PIL images) with their thresholds."""

    index: GoldenIndex
    persons: list[Image.Image]
    garments: list[Image.Image]
    references: list[np.ndarray]

    @classmethod
    def load(cls, model_dir: Path) -> GoldenSet | None:
        """Load golden/ if present; a model without golden data cannot pass smoke."""
        root = model_dir / GOLDEN_DIR
        if not (root / GOLDEN_INDEX).exists():
            return None
        index = GoldenIndex.model_validate(json.loads((root / GOLDEN_INDEX).read_text()))
        persons = [_load_rgb(root / c.person) for c in index.cases]
        garments = [_load_rgb(root / c.garment) for c in index.cases]
        refs = [np.asarray(_load_rgb(root / c.reference), dtype=np.uint8) for c in index.cases]
        return cls(index=index, persons=persons, garments=garments, references=refs)


def _load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def synthetic_person(contract: ModelContract, seed: int) -> Image.Image:
    """A deterministic stylised person: background, head, torso, legs."""
    rng = np.random.default_rng(seed)
    w, h = contract.width, contract.height
    bg = tuple(int(v) for v in rng.integers(150, 230, 3))
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    skin = (224, 172, 105)
    draw.ellipse([w * 0.38, h * 0.05, w * 0.62, h * 0.22], fill=skin)
    shirt = tuple(int(v) for v in rng.integers(20, 120, 3))
    draw.rectangle([w * 0.28, h * 0.22, w * 0.72, h * 0.55], fill=shirt)
    draw.rectangle([w * 0.33, h * 0.55, w * 0.67, h * 0.95], fill=(40, 40, 80))
    return img


def synthetic_garment(contract: ModelContract, seed: int) -> Image.Image:
    """A deterministic flat-lay T-shirt on white with a stripe pattern."""
    rng = np.random.default_rng(seed + 1000)
    w, h = contract.width, contract.height
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(v) for v in rng.integers(0, 255, 3))
    body = [
        (w * 0.3, h * 0.2), (w * 0.7, h * 0.2), (w * 0.9, h * 0.35), (w * 0.78, h * 0.42),
        (w * 0.72, h * 0.38), (w * 0.72, h * 0.8), (w * 0.28, h * 0.8), (w * 0.28, h * 0.38),
        (w * 0.22, h * 0.42), (w * 0.1, h * 0.35),
    ]  # fmt: skip
    draw.polygon(body, fill=colour)
    stripe = tuple(255 - c for c in colour)
    for y in range(int(h * 0.3), int(h * 0.8), max(4, h // 16)):
        draw.line([(w * 0.3, y), (w * 0.7, y)], fill=stripe, width=max(1, h // 64))
    return img
