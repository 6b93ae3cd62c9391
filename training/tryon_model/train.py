"""Training: fit the renderer's try-on network, log everything to MLflow, register a version.

The network is the renderer's own (`tryon_renderer.network.TryOnNet`) and the artifact is written by
the renderer's packaging (`tryon_renderer.packaging.write_model_dir`: weights, architecture,
contract, golden smoke inputs with reference outputs, checksums), so what is trained here is
exactly what the renderer serves. The model is logged into the training run itself, so the
registered version's run carries the params, per-epoch metrics, dataset hash and code version.

Loss: L1 on the output image, plus (when the dataset has try-on masks) L1 inside the mask, L1 of
the warped garment against the target inside the mask (teaches the appearance flow), and binary
cross-entropy of the predicted blend mask against the try-on mask.

Determinism: seeds for torch and for batch order; deterministic algorithms on CPU. On CUDA some
kernels (grid_sample backward) have no deterministic version, so runs are close, not identical.
"""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .baselines import BASELINE_NAMES, baseline_metrics
from .data import Batch, Dataset, dataset_hash, load_batch, open_dataset
from .distributed import SINGLE, DistContext
from .evaluate import evaluate_model, identity_metrics, pick_device
from .fit import FitOptions, FitResult, TrainConfig, TrainingError, fit
from .registry import TAG_PREFIX, Registry, VersionInfo, actor, now_iso
from .tracking import TrainingRun

__all__ = [
    "FitResult",
    "TrainConfig",
    "TrainOptions",
    "TrainResult",
    "TrainingError",
    "fit",
    "measure_latency_ms",
    "model_size",
    "train_and_register",
]


@dataclass
class TrainResult:
    run_id: str
    version: VersionInfo | None
    metrics: dict[str, float]
    baseline: dict[str, float]
    size_bytes: int
    parameters: int
    latency_ms: float
    steps: int
    seconds: float
    dataset_hash: str
    experiment_id: str = ""
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def model_size(model: torch.nn.Module) -> tuple[int, int]:
    """(parameters, bytes of the saved state dict)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return sum(p.numel() for p in model.parameters()), buf.getbuffer().nbytes


@torch.inference_mode()
def measure_latency_ms(
    model: torch.nn.Module, height: int, width: int, device: torch.device, repeats: int = 20
) -> float:
    """Median wall time of one batch-1 forward pass (after warm-up) on `device`."""
    model = model.to(device).eval()
    x = torch.zeros(1, 3, height, width, device=device)
    c = torch.zeros(1, dtype=torch.int64, device=device)
    for _ in range(3):
        model(x, x, c)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x, x, c)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def code_version() -> dict[str, str]:
    """Git commit (and whether the tree is dirty) of this package, else the package version."""
    here = Path(__file__).resolve().parent
    out: dict[str, str] = {}
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        out["git_commit"] = commit
        out["git_dirty"] = "true" if dirty.strip() else "false"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import version

        out["package_version"] = version("tryon-operator")
    except Exception:
        out["package_version"] = "unknown"
    return out


def _resolve_size(cfg: TrainConfig, ds: Dataset) -> tuple[int, int]:
    height = cfg.height or ds.height
    width = cfg.width or ds.width
    if height is None or width is None:
        raise TrainingError("the dataset declares no image size: pass --height and --width")
    step = 2**cfg.levels
    if height % step or width % step or height < 16 or width < 16:
        raise TrainingError(
            f"image size {height}x{width} must be at least 16 and divisible by {step} "
            f"(the network has {cfg.levels} pyramid levels)"
        )
    return height, width


@dataclass(frozen=True)
class TrainOptions:
    """What `train` does around the fit: the data layout, where the run goes, what is registered."""

    experiment: str = "tryon-training"
    data_format: str = "auto"
    register: bool = True
    num_golden: int = 2
    latency_budget_ms: float = 5000.0
    run_name: str | None = None
    extra_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _TrainData:
    """The opened dataset with its batches at the training resolution."""

    ds: Dataset
    height: int
    width: int
    train: Batch
    val: Batch
    has_masks: bool
    hash: str  # "" on ranks other than 0, which log nothing


@dataclass(frozen=True)
class _FinalEval:
    """What is measured on the trained network, logged to the run and returned."""

    final: dict[str, float]
    identity: dict[str, float]
    baselines: dict[str, dict[str, float]]
    parameters: int
    size_bytes: int
    latency_ms: float

    def summary(self, result: FitResult) -> dict[str, float]:
        paste = self.baselines.get(BASELINE_NAMES[1], {})
        return {
            **{f"final_val_{k}": v for k, v in self.final.items()},
            **{f"baseline_identity_{k}": v for k, v in self.identity.items()},
            **{f"baseline_paste_{k}": v for k, v in paste.items()},
            "model_parameters": float(self.parameters),
            "model_size_bytes": float(self.size_bytes),
            "latency_ms_cpu_b1": self.latency_ms,
            "train_seconds": result.seconds,
            "train_steps": float(result.steps),
        }


def train_and_register(
    data: Path,
    cfg: TrainConfig,
    model_name: str,
    registry: Registry,
    opts: TrainOptions = TrainOptions(),
    ctx: DistContext = SINGLE,
) -> TrainResult:
    """The `train` command: data -> fit -> log run -> package -> register.

    Under torchrun (`ctx.enabled`) every rank trains; rank 0 alone logs, packages and registers.
    """
    ds = open_dataset(data, opts.data_format)
    height, width = _resolve_size(cfg, ds)
    if not ds.split("train"):
        raise TrainingError(f"{ds.root}: the train split is empty")
    if ctx.is_main:
        registry.check_reachable()
    td = _load_data(ds, height, width, ctx.is_main)
    if not ctx.is_main:
        result = _fit(
            cfg, td.train, td.val, len(ds.categories), FitOptions(td.has_masks, None, False, ctx)
        )
        return TrainResult(
            "", None, {}, {}, 0, 0, 0.0, result.steps, result.seconds, "", world_size=ctx.world_size
        )
    return _train_logged(cfg, td, model_name, registry, opts, ctx)


def _load_data(ds: Dataset, height: int, width: int, main: bool) -> _TrainData:
    """Hash (rank 0 only) and decode the train and val splits."""
    train_samples, val_samples = ds.split("train"), ds.split("val")
    data_hash = dataset_hash(ds, show_progress=main) if main else ""
    train_batch = load_batch(
        train_samples, height, width, ds.categories, label="loading train" if main else None
    )
    val_batch = load_batch(
        val_samples, height, width, ds.categories, label="loading val" if main else None
    )
    has_masks = all(s.mask is not None for s in train_samples)
    return _TrainData(ds, height, width, train_batch, val_batch, has_masks, data_hash)


def _train_logged(
    cfg: TrainConfig,
    td: _TrainData,
    model_name: str,
    registry: Registry,
    opts: TrainOptions,
    ctx: DistContext,
) -> TrainResult:
    """Rank 0: fit inside an MLflow run, log the model into it and register a version."""
    from tryon_renderer.contract import ModelContract
    from tryon_renderer.packaging import GoldenSpec

    code = code_version()
    run = TrainingRun.start(registry, opts.experiment, opts.run_name, _run_tags(td, code, opts))
    run.log_params(_run_params(cfg, td, pick_device(cfg.device), ctx))

    def log_epoch(epoch: int, record: dict[str, float]) -> None:
        run.log_metrics(record, epoch, "logging metrics")

    status = "FAILED"
    try:
        fit_opts = FitOptions(td.has_masks, log_epoch, True, ctx)
        result = _fit(cfg, td.train, td.val, len(td.ds.categories), fit_opts)
        ev = _final_eval(result.model, td)
        run.log_metrics(ev.summary(result), result.steps, "logging summary metrics")
        source = run.log_model(
            result.model,
            ModelContract(height=td.height, width=td.width, categories=td.ds.categories),
            GoldenSpec(num_cases=opts.num_golden, latency_budget_ms=opts.latency_budget_ms),
        )
        version = None
        if opts.register:
            tags = _version_tags(td.hash, run.run_id, result.steps, code, ev.final)
            version = registry.create_version(model_name, source, run.run_id, tags)
        status = "FINISHED"
    finally:
        run.finish(status)  # never hides the original error
    return TrainResult(
        run.run_id,
        version,
        ev.final,
        ev.identity,
        ev.size_bytes,
        ev.parameters,
        ev.latency_ms,
        result.steps,
        result.seconds,
        td.hash,
        experiment_id=run.experiment_id,
        world_size=ctx.world_size,
        extra={"baselines": ev.baselines},
    )


def _run_tags(td: _TrainData, code: dict[str, str], opts: TrainOptions) -> dict[str, str]:
    """Who trained what from which data and code: the run's provenance tags."""
    commit = {"mlflow.source.git.commit": code["git_commit"]} if "git_commit" in code else {}
    return {
        "mlflow.user": actor(),
        "mlflow.source.name": "tryon-model train",
        **commit,
        TAG_PREFIX + "dataset_hash": td.hash,
        TAG_PREFIX + "dataset_path": str(td.ds.root),
        TAG_PREFIX + "dataset_format": td.ds.format,
        **{TAG_PREFIX + k: v for k, v in code.items()},
        **opts.extra_tags,
    }


def _run_params(
    cfg: TrainConfig, td: _TrainData, device: torch.device, ctx: DistContext
) -> dict[str, str]:
    return {
        **{k: str(v) for k, v in asdict(cfg).items()},
        "height": str(td.height),
        "width": str(td.width),
        "device": str(device),
        "train_samples": str(len(td.train)),
        "val_samples": str(len(td.val)),
        "dataset_hash": td.hash,
        "categories": ",".join(td.ds.categories),
        "world_size": str(ctx.world_size),
        "backend": ctx.backend or "none",
    }


def _final_eval(net: torch.nn.Module, td: _TrainData) -> _FinalEval:
    """Validation metrics next to the baselines, and the size and CPU latency the renderer sees."""
    val = td.val
    identity = identity_metrics(val) if len(val) else {}
    baselines = baseline_metrics(val) if len(val) else {}
    final = evaluate_model(net, val, torch.device("cpu")) if len(val) else {}
    parameters, size_bytes = model_size(net)
    latency = measure_latency_ms(net, td.height, td.width, torch.device("cpu"))
    return _FinalEval(final, identity, baselines, parameters, size_bytes, latency)


def _version_tags(
    data_hash: str, run_id: str, steps: int, code: dict[str, str], final: dict[str, float]
) -> dict[str, str]:
    """Tags of the registered version: format, provenance and the validation metrics."""
    from tryon_renderer.packaging import NATIVE_FORMAT

    return {
        "tryon.format": NATIVE_FORMAT,
        TAG_PREFIX + "dataset_hash": data_hash,
        TAG_PREFIX + "train_run_id": run_id,
        TAG_PREFIX + "created_by": actor(),
        TAG_PREFIX + "created_at": now_iso(),
        TAG_PREFIX + "train_steps": str(steps),
        **{TAG_PREFIX + k: v for k, v in code.items()},
        **{TAG_PREFIX + f"val_{k}": f"{v:.6f}" for k, v in final.items()},
    }


def _fit(
    cfg: TrainConfig, train: Batch, val: Batch, num_categories: int, opts: FitOptions
) -> FitResult:
    """`fit`, with a failed peer process turned into one clear error."""
    ctx = opts.ctx
    try:
        return fit(cfg, train, val, num_categories, opts)
    except RuntimeError as err:  # torch.distributed.DistBackendError is a RuntimeError
        if not ctx.enabled:
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise TrainingError(
            f"data-parallel training failed on rank {ctx.rank} of {ctx.world_size}: another "
            f"worker stopped or failed ({first}); nothing was registered"
        ) from err
