"""The two reference outputs evaluate prints next to a model."""

from __future__ import annotations

import pytest
import torch
from tryon_model.baselines import BASELINE_NAMES, TORSO_BOX, baseline_metrics, paste_on_torso
from tryon_model.data import load_batch

pytestmark = pytest.mark.unit


def test_pasted_garment_changes_only_the_torso_box(tiny_dataset) -> None:
    batch = load_batch(tiny_dataset.split("train")[:4], 32, 24)
    pasted = paste_on_torso(batch.person, batch.garment)
    outside = torch.ones(32, 24, dtype=torch.bool)
    y0, y1 = round(TORSO_BOX[2] * 32), round(TORSO_BOX[3] * 32)
    x0, x1 = round(TORSO_BOX[0] * 24), round(TORSO_BOX[1] * 24)
    outside[y0:y1, x0:x1] = False
    assert torch.equal(pasted[..., outside], batch.person[..., outside])
    assert not torch.equal(pasted[..., ~outside], batch.person[..., ~outside])


def test_person_unchanged_is_perfect_outside_the_mask_and_worst_inside(tiny_dataset) -> None:
    batch = load_batch(tiny_dataset.split("train"), 32, 24)
    metrics = baseline_metrics(batch)
    assert set(metrics) == set(BASELINE_NAMES)
    unchanged, pasted = (metrics[name] for name in BASELINE_NAMES)
    assert unchanged["l1"] < unchanged["masked_l1"]
    assert pasted["masked_l1"] < unchanged["masked_l1"]
