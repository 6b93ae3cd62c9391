"""Evaluation: metrics of a model (in memory or a registry version) on a held-out split.

Registry versions are loaded through the renderer's own loader (`tryon_renderer.loading`), so the
evaluated model is byte for byte what the renderer would serve: same artifact layout, checksum
verification, contract, and resolution.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import Batch, Dataset, load_batch
from .metrics import LOWER_IS_BETTER, METRIC_NAMES, MetricAccumulator
from .progress import Progress


class EvaluationError(Exception):
    """The evaluation cannot run (model cannot be loaded, split empty, ...)."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.inference_mode()
def evaluate_model(
    model: nn.Module,
    batch: Batch,
    device: torch.device | None = None,
    batch_size: int = 32,
    label: str | None = None,
) -> dict[str, float]:
    """Average metrics of `model` on `batch` (contract tensors); model is put in eval mode."""
    if len(batch) == 0:
        raise EvaluationError("nothing to evaluate: the split is empty")
    device = device or torch.device("cpu")
    model = model.to(device).eval()
    acc = MetricAccumulator()
    with Progress(len(batch), label or "evaluating", enabled=label is not None) as bar:
        for start in range(0, len(batch), batch_size):
            part = batch.slice(start, start + batch_size).to(device)
            out = model(part.person, part.garment, part.category)
            acc.add(out.float(), part.target, part.mask)
            bar.update(len(part))
    return acc.result()


def identity_metrics(batch: Batch) -> dict[str, float]:
    """Metrics of the do-nothing baseline (output = person input), for reference."""
    acc = MetricAccumulator()
    acc.add(batch.person, batch.target, batch.mask)
    return acc.result()


@dataclass
class LoadedVersion:
    model: nn.Module
    height: int
    width: int
    categories: tuple[str, ...]
    version: str


def s3_client_from_env() -> Any:
    """S3 client for model artifacts, configured like the renderer (SigV4, path-style)."""
    from tryon_renderer.s3 import make_client

    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    return make_client(endpoint, region, timeout_s=10.0)


def load_version(
    name: str, version: str, tracking_uri: str | None, cache_dir: Path | None = None
) -> LoadedVersion:
    """Download and build a registered version with the renderer's loader."""
    from tryon_renderer.loading import ModelLoadError, load_model

    def _load(directory: Path) -> LoadedVersion:
        try:
            loaded = load_model(
                model_uri=f"models:/{name}/{version}",
                model_path=None,
                cache_dir=directory,
                s3_client=s3_client_from_env(),
                tracking_uri=tracking_uri,
            )
        except ModelLoadError as err:
            raise EvaluationError(f"cannot load {name} version {version}: {err}") from err
        c = loaded.contract
        return LoadedVersion(loaded.model, c.height, c.width, tuple(c.categories), str(version))

    if cache_dir is not None:
        return _load(cache_dir)
    # No shared cache by default: a version number is only unique within one registry.
    with tempfile.TemporaryDirectory(prefix="tryon-eval-") as tmp:
        return _load(Path(tmp))


def evaluate_version(
    loaded: LoadedVersion,
    ds: Dataset,
    split: str,
    device: torch.device,
    batch_cache: dict[tuple[Any, ...], Batch] | None = None,
) -> dict[str, float]:
    """Evaluate a loaded version on `split`, loading the data at the model's resolution."""
    samples = ds.split(split)
    if not samples:
        raise EvaluationError(f"split {split!r} of {ds.root} is empty")
    key = (loaded.height, loaded.width, loaded.categories)
    batch = batch_cache.get(key) if batch_cache is not None else None
    if batch is None:
        batch = load_batch(samples, loaded.height, loaded.width, loaded.categories)
        if batch_cache is not None:
            batch_cache[key] = batch
    return evaluate_model(loaded.model, batch, device, label=f"evaluating v{loaded.version}")


def format_table(columns: dict[str, dict[str, float]], baseline: str | None = None) -> str:
    """Metrics side by side; with `baseline`, a delta column (+ = better) for the first other."""
    names = list(columns)
    header = ["metric", *names]
    others = [n for n in names if n != baseline]
    show_delta = baseline is not None and baseline in columns and others
    if show_delta:
        header.append("delta")
    rows = [header]
    for metric in METRIC_NAMES:
        row = [metric + (" (lower=better)" if LOWER_IS_BETTER[metric] else " (higher=better)")]
        row += [f"{columns[n].get(metric, float('nan')):.4f}" for n in names]
        if show_delta:
            assert baseline is not None
            cand = columns[others[0]].get(metric, float("nan"))
            base = columns[baseline].get(metric, float("nan"))
            delta = (base - cand) if LOWER_IS_BETTER[metric] else (cand - base)
            row.append(f"{delta:+.4f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows
    )
