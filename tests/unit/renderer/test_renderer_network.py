"""The try-on network follows its contract and behaves like a warping model."""

from __future__ import annotations

import pytest
import torch
from tryon_renderer.network import (
    FaultyOutput,
    TryOnConfig,
    TryOnNet,
    build_model,
    warp,
)

pytestmark = pytest.mark.unit


def _inputs(batch: int = 2, h: int = 64, w: int = 48) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(1)
    person = torch.rand(batch, 3, h, w, generator=gen) * 2 - 1
    garment = torch.rand(batch, 3, h, w, generator=gen) * 2 - 1
    return person, garment, torch.tensor([0, 2][:batch])


def test_output_shape_and_range_follow_contract() -> None:
    net = TryOnNet(TryOnConfig(base_width=4)).eval()
    person, garment, category = _inputs()
    with torch.inference_mode():
        out = net(person, garment, category)
    assert out.shape == person.shape
    assert torch.isfinite(out).all()
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_untrained_flow_is_identity_so_garment_passes_through() -> None:
    net = TryOnNet(TryOnConfig(base_width=4)).eval()
    person, garment, category = _inputs()
    with torch.inference_mode():
        aux = net.forward_with_aux(person, garment, category)
    assert torch.count_nonzero(aux["flow"]) == 0
    assert torch.allclose(aux["warped"], garment, atol=1e-5)


def test_warp_shifts_image_by_flow() -> None:
    image = torch.zeros(1, 1, 8, 8)
    image[..., 4] = 1.0
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 2.0 / 8  # sample one pixel to the right
    shifted = warp(image, flow)
    assert torch.allclose(shifted[..., 3], torch.ones(1, 1, 8), atol=1e-5)


def test_batched_forward_equals_single_forwards() -> None:
    """No normalisation across the batch: micro-batching must not change a user's result."""
    net = TryOnNet(TryOnConfig(base_width=4)).eval()
    person, garment, category = _inputs()
    with torch.inference_mode():
        batched = net(person, garment, category)
        singles = torch.cat(
            [net(person[i : i + 1], garment[i : i + 1], category[i : i + 1]) for i in range(2)]
        )
    assert torch.allclose(batched, singles, atol=1e-5)


def test_category_changes_the_output() -> None:
    net = TryOnNet(TryOnConfig(base_width=4)).eval()
    person, garment, _ = _inputs(batch=1)
    with torch.inference_mode():
        upper = net(person, garment, torch.tensor([0]))
        dress = net(person, garment, torch.tensor([2]))
    assert not torch.allclose(upper, dress)


@pytest.mark.parametrize("mode", ["nan", "blank"])
def test_faulty_output_corrupts_as_asked(mode: str) -> None:
    net = FaultyOutput(TryOnNet(TryOnConfig(base_width=4)), mode)
    with torch.inference_mode():
        out = net(*_inputs())
    if mode == "nan":
        assert torch.isnan(out).all()
    else:
        assert torch.count_nonzero(out) == 0


def test_build_model_round_trips_weights_and_rejects_unknown_arch() -> None:
    net = TryOnNet(TryOnConfig(base_width=4))
    arch = {"name": "tryon-afn-v1", "config": net.config.to_dict()}
    rebuilt = build_model(arch, net.state_dict())
    assert isinstance(rebuilt, TryOnNet)
    assert torch.equal(rebuilt.generator.head.weight, net.generator.head.weight)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model({"name": "something-else"})
    with pytest.raises(ValueError, match="failure mode"):
        FaultyOutput(net, "explode")
