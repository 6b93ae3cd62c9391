"""Training on the renderer's network: deterministic, learns, and a 0-step model is worse."""

from __future__ import annotations

import pytest
import torch
from tryon_model.data import load_batch
from tryon_model.evaluate import evaluate_model, format_table, identity_metrics
from tryon_model.fit import FitOptions
from tryon_model.train import TrainConfig, fit, measure_latency_ms, model_size

pytestmark = pytest.mark.unit

TINY = {"base_width": 4, "batch_size": 8, "device": "cpu"}
QUIET = FitOptions(show_progress=False)


@pytest.fixture
def batches(tiny_dataset):
    return (
        load_batch(tiny_dataset.split("train"), 32, 24),
        load_batch(tiny_dataset.split("val"), 32, 24),
    )


def test_same_seed_same_weights(batches) -> None:
    train, val = batches
    a = fit(TrainConfig(epochs=1, seed=5, **TINY), train, val, 3, QUIET)
    b = fit(TrainConfig(epochs=1, seed=5, **TINY), train, val, 3, QUIET)
    c = fit(TrainConfig(epochs=1, seed=6, **TINY), train, val, 3, QUIET)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.history == b.history


def test_training_reduces_the_loss_and_logs_every_epoch(batches) -> None:
    train, val = batches
    seen: list[int] = []
    result = fit(
        TrainConfig(epochs=4, **TINY),
        train,
        val,
        3,
        FitOptions(on_epoch=lambda epoch, _: seen.append(epoch), show_progress=False),
    )
    assert seen == [0, 1, 2, 3]
    assert result.steps == 8
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert {"val_l1", "val_ssim", "val_masked_l1", "val_psnr"} <= set(result.history[-1])


def test_zero_steps_is_an_untrained_model(batches) -> None:
    train, val = batches
    untrained = fit(TrainConfig(max_steps=0, **TINY), train, val, 3, QUIET)
    trained = fit(TrainConfig(epochs=6, **TINY), train, val, 3, QUIET)
    assert untrained.steps == 0 and untrained.history == []
    u = evaluate_model(untrained.model, val)
    t = evaluate_model(trained.model, val)
    assert t["l1"] < u["l1"]
    table = format_table({"untrained": u, "trained": t}, baseline="untrained")
    assert "delta" in table and "masked_l1" in table


def test_corrupted_labels_change_training(batches) -> None:
    train, val = batches
    clean = fit(TrainConfig(epochs=1, **TINY), train, val, 3, QUIET)
    bad = fit(TrainConfig(epochs=1, corrupt_labels=True, **TINY), train, val, 3, QUIET)
    assert clean.history[0]["train_loss"] != bad.history[0]["train_loss"]


def test_identity_baseline_is_perfect_outside_the_mask(batches) -> None:
    _, val = batches
    base = identity_metrics(val)
    assert base["l1"] < base["masked_l1"]


def test_size_and_latency(batches) -> None:
    train, val = batches
    net = fit(TrainConfig(max_steps=0, **TINY), train, val, 3, QUIET).model
    params, size = model_size(net)
    assert params == sum(p.numel() for p in net.parameters()) > 0
    assert size > params * 4  # float32 weights plus the container
    assert measure_latency_ms(net, 32, 24, torch.device("cpu"), repeats=3) > 0


def test_bad_settings_are_refused(batches) -> None:
    from tryon_model.train import TrainingError

    train, val = batches
    with pytest.raises(TrainingError):
        fit(
            TrainConfig(batch_size=0, **{k: v for k, v in TINY.items() if k != "batch_size"}),
            train,
            val,
            3,
        )
    with pytest.raises(TrainingError, match="empty"):
        fit(TrainConfig(**TINY), train.slice(0, 0), val, 3)
