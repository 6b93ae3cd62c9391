"""Shared helpers for tryon_model unit tests: tiny seeded datasets and few torch threads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tryon_model.data import Dataset, SyntheticSpec, make_synthetic

TINY_H, TINY_W = 32, 24


@pytest.fixture(autouse=True)
def _few_threads() -> Iterator[None]:
    """The machine is shared: keep torch to one thread and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRYON_PROGRESS", "0")


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Dataset:
    """20 samples at 32x24 (train 16, val 2, test 2)."""
    return make_synthetic(tmp_path / "ds", SyntheticSpec(20, height=TINY_H, width=TINY_W, seed=3))
