"""The renderer computes in bf16 only where its outputs stay within one 8-bit level of fp32."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tryon_renderer import precision
from tryon_renderer.batching import BatchRunner
from tryon_renderer.contract import ModelContract
from tryon_renderer.fastpath import photo_batch
from tryon_renderer.loading import LoadedModel
from tryon_renderer.packaging import write_model_dir
from tryon_renderer.placement import PlacementConfig, PlacementTryOnNet

from .conftest import tiny_net

CONTRACT = ModelContract(height=64, width=48)
CPU = torch.device("cpu")


def placement_net() -> PlacementTryOnNet:
    torch.manual_seed(0)
    return PlacementTryOnNet(PlacementConfig(base_width=8)).eval()


def loaded(model: torch.nn.Module, tmp_path: Path) -> LoadedModel:
    return LoadedModel(model=model, contract=CONTRACT, local_dir=tmp_path, uri="local")


@pytest.fixture
def no_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2", "avx512f"})


@pytest.fixture
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})


def test_bf16_composition_stays_within_one_8bit_level_of_fp32_on_photos() -> None:
    runner = BatchRunner(placement_net(), CPU)
    person, garment, category = photo_batch(4, 64, 48)
    exact = runner.run(person, garment, category)
    assert runner.set_reduced(torch.bfloat16) == "bf16 composition"
    reduced = runner.run(person, garment, category)
    assert float((reduced - exact).abs().max()) <= precision.EQUAL_OUTPUT_TOLERANCE


def test_auto_is_fp32_on_a_cpu_without_native_bf16(no_native_bf16: None) -> None:
    assert precision.reduced_dtype("auto", CPU) is None


def test_auto_is_bf16_on_a_cpu_with_native_bf16(native_bf16: None) -> None:
    assert precision.reduced_dtype("auto", CPU) == torch.bfloat16


def test_an_explicit_setting_wins_over_the_cpu_flags(no_native_bf16: None) -> None:
    assert precision.reduced_dtype("bf16", CPU) == torch.bfloat16
    assert precision.reduced_dtype("fp32", CPU) is None


def test_auto_serves_the_placement_network_with_a_bf16_composition(
    native_bf16: None, tmp_path: Path
) -> None:
    runner = BatchRunner(placement_net(), CPU)
    choice = precision.choose_precision(runner, loaded(runner.model, tmp_path), "auto")
    assert choice.label == runner.precision == "bf16 composition"
    assert 0 < choice.max_abs_diff <= precision.EQUAL_OUTPUT_TOLERANCE


def test_auto_falls_back_to_fp32_when_outputs_differ_by_more_than_the_tolerance(
    native_bf16: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "EQUAL_OUTPUT_TOLERANCE", 0.0)
    runner = BatchRunner(placement_net(), CPU)
    choice = precision.choose_precision(runner, loaded(runner.model, tmp_path), "auto")
    assert choice.fell_back and choice.label == runner.precision == "fp32"
    assert getattr(runner.model, "composition_dtype") is None  # noqa: B009


def test_a_network_without_a_composition_stage_stays_fp32_on_a_cpu(
    native_bf16: None, tmp_path: Path
) -> None:
    runner = BatchRunner(tiny_net(), CPU)
    choice = precision.choose_precision(runner, loaded(runner.model, tmp_path), "bf16")
    assert choice.label == "fp32" and runner.autocast_dtype is None


def test_the_served_precision_is_reported_by_the_model_endpoint(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    model_dir = write_model_dir(placement_net(), tmp_path / "m", contract=CONTRACT)
    client = make_client(model_dir, precision="bf16")
    assert client.get("/v1/model").json()["precision"] == "bf16 composition"
    assert client.post("/v1/smoke").json()["passed"] is True
