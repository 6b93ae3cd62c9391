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

import contextlib
import io
import math
import subprocess
import tempfile
import time
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

__all__ = [
    "FitResult",
    "TrainConfig",
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


def train_and_register(
    data: Path,
    cfg: TrainConfig,
    model_name: str,
    registry: Registry,
    experiment: str = "tryon-training",
    data_format: str = "auto",
    register: bool = True,
    num_golden: int = 2,
    latency_budget_ms: float = 5000.0,
    run_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    ctx: DistContext = SINGLE,
) -> TrainResult:
    """The `train` command: data -> fit -> log run -> package -> register.

    Under torchrun (`ctx.enabled`) every rank trains; rank 0 alone logs, packages and registers.
    """
    from mlflow.entities import Metric, Param
    from tryon_renderer.contract import ModelContract
    from tryon_renderer.packaging import ARTIFACT_PATH, NATIVE_FORMAT, write_model_dir

    ds = open_dataset(data, data_format)
    height, width = _resolve_size(cfg, ds)
    train_samples, val_samples = ds.split("train"), ds.split("val")
    if not train_samples:
        raise TrainingError(f"{ds.root}: the train split is empty")
    main = ctx.is_main
    if main:
        registry.check_reachable()
    data_hash = dataset_hash(ds, show_progress=main) if main else ""
    train_batch = load_batch(
        train_samples, height, width, ds.categories, label="loading train" if main else None
    )
    val_batch = load_batch(
        val_samples, height, width, ds.categories, label="loading val" if main else None
    )
    has_masks = all(s.mask is not None for s in train_samples)
    if not main:
        opts = FitOptions(has_masks, None, False, ctx)
        result = _fit(cfg, train_batch, val_batch, len(ds.categories), opts)
        return TrainResult(
            "", None, {}, {}, 0, 0, 0.0, result.steps, result.seconds, "", world_size=ctx.world_size
        )
    code = code_version()
    client = registry.client
    with registry._translate(f"experiment {experiment!r}"):
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
        run = client.create_run(
            exp_id,
            run_name=run_name,
            tags={
                "mlflow.user": actor(),
                "mlflow.source.name": "tryon-model train",
                **(
                    {"mlflow.source.git.commit": code["git_commit"]} if "git_commit" in code else {}
                ),
                TAG_PREFIX + "dataset_hash": data_hash,
                TAG_PREFIX + "dataset_path": str(ds.root),
                TAG_PREFIX + "dataset_format": ds.format,
                **{TAG_PREFIX + k: v for k, v in code.items()},
                **(extra_tags or {}),
            },
        )
    run_id = run.info.run_id
    device = pick_device(cfg.device)
    params = {
        **{k: str(v) for k, v in asdict(cfg).items()},
        "height": str(height),
        "width": str(width),
        "device": str(device),
        "train_samples": str(len(train_batch)),
        "val_samples": str(len(val_batch)),
        "dataset_hash": data_hash,
        "categories": ",".join(ds.categories),
        "world_size": str(ctx.world_size),
        "backend": ctx.backend or "none",
    }
    with registry._translate("logging params"):
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])

    def log_epoch(epoch: int, record: dict[str, float]) -> None:
        ts = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts, epoch) for k, v in record.items() if math.isfinite(v)]
        with registry._translate("logging metrics"):
            client.log_batch(run_id, metrics=metrics)

    status = "FAILED"
    try:
        opts = FitOptions(has_masks, log_epoch, True, ctx)
        result = _fit(cfg, train_batch, val_batch, len(ds.categories), opts)
        net = result.model
        baseline = identity_metrics(val_batch) if len(val_batch) else {}
        baselines = baseline_metrics(val_batch) if len(val_batch) else {}
        paste = baselines.get(BASELINE_NAMES[1], {})
        final = evaluate_model(net, val_batch, torch.device("cpu")) if len(val_batch) else {}
        parameters, size_bytes = model_size(net)
        latency = measure_latency_ms(net, height, width, torch.device("cpu"))
        summary = {
            **{f"final_val_{k}": v for k, v in final.items()},
            **{f"baseline_identity_{k}": v for k, v in baseline.items()},
            **{f"baseline_paste_{k}": v for k, v in paste.items()},
            "model_parameters": float(parameters),
            "model_size_bytes": float(size_bytes),
            "latency_ms_cpu_b1": latency,
            "train_seconds": result.seconds,
            "train_steps": float(result.steps),
        }
        ts = int(time.time() * 1000)
        with registry._translate("logging summary metrics"):
            client.log_batch(
                run_id,
                metrics=[
                    Metric(k, float(v), ts, result.steps)
                    for k, v in summary.items()
                    if math.isfinite(v)
                ],
            )
        contract = ModelContract(height=height, width=width, categories=ds.categories)
        with tempfile.TemporaryDirectory(prefix="tryon-train-") as tmp:
            model_dir = write_model_dir(
                net,
                Path(tmp) / ARTIFACT_PATH,
                contract=contract,
                num_golden=num_golden,
                latency_budget_ms=latency_budget_ms,
            )
            with registry._translate("uploading the model artifacts"):
                client.log_artifacts(run_id, str(model_dir), ARTIFACT_PATH)
        version = None
        if register:
            tags = {
                "tryon.format": NATIVE_FORMAT,
                TAG_PREFIX + "dataset_hash": data_hash,
                TAG_PREFIX + "train_run_id": run_id,
                TAG_PREFIX + "created_by": actor(),
                TAG_PREFIX + "created_at": now_iso(),
                TAG_PREFIX + "train_steps": str(result.steps),
                **{TAG_PREFIX + k: v for k, v in code.items()},
                **{TAG_PREFIX + f"val_{k}": f"{v:.6f}" for k, v in final.items()},
            }
            version = registry.create_version(
                model_name, f"{run.info.artifact_uri}/{ARTIFACT_PATH}", run_id, tags
            )
        status = "FINISHED"
    finally:
        with contextlib.suppress(Exception):  # never hide the original error
            client.set_terminated(run_id, status)
    return TrainResult(
        run_id,
        version,
        final,
        baseline,
        size_bytes,
        parameters,
        latency,
        result.steps,
        result.seconds,
        data_hash,
        experiment_id=str(exp_id),
        world_size=ctx.world_size,
        extra={"baselines": baselines},
    )


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
