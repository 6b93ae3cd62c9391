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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias

from .data import Batch, Dataset, dataset_hash, load_batch, open_dataset
from .evaluate import evaluate_model, identity_metrics, pick_device
from .progress import Progress
from .registry import TAG_PREFIX, Registry, VersionInfo, actor, now_iso

if TYPE_CHECKING:
    from tryon_renderer.network import TryOnNet


class TrainingError(Exception):
    """Training cannot start or finish (bad settings, empty data)."""


@dataclass
class TrainConfig:
    epochs: int = 20
    max_steps: int | None = None  # stop after this many optimiser steps (0: untrained)
    batch_size: int = 16
    lr: float = 3e-3
    base_width: int = 16
    levels: int = 3
    height: int | None = None  # default: the dataset's declared size
    width: int | None = None
    seed: int = 0
    device: str = "auto"
    corrupt_labels: bool = False  # shuffle targets between samples (a deliberately bad model)
    mask_weight: float = 1.0
    warp_weight: float = 0.5
    blend_weight: float = 0.1
    grad_clip: float = 1.0


@dataclass
class FitResult:
    model: TryOnNet
    history: list[dict[str, float]]
    steps: int
    seconds: float


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
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def build_network(cfg: TrainConfig, num_categories: int) -> TryOnNet:
    from tryon_renderer.network import TryOnConfig, TryOnNet

    return TryOnNet(
        TryOnConfig(base_width=cfg.base_width, levels=cfg.levels, num_categories=num_categories)
    )


def training_loss(
    aux: dict[str, torch.Tensor], batch: Batch, cfg: TrainConfig, has_masks: bool
) -> torch.Tensor:
    loss = F.l1_loss(aux["image"], batch.target)
    if has_masks:
        m = batch.mask
        area = m.sum().clamp_min(1.0) * 3
        loss = loss + cfg.mask_weight * ((aux["image"] - batch.target).abs() * m).sum() / area
        loss = loss + cfg.warp_weight * ((aux["warped"] - batch.target).abs() * m).sum() / area
        blend = aux["mask"].clamp(1e-4, 1 - 1e-4)
        loss = loss + cfg.blend_weight * F.binary_cross_entropy(blend, m)
    return loss


def fit(
    cfg: TrainConfig,
    train: Batch,
    val: Batch,
    num_categories: int,
    has_masks: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    show_progress: bool = True,
) -> FitResult:
    """Train a fresh network on `train`, evaluating on `val` after every epoch."""
    if len(train) == 0:
        raise TrainingError("the train split is empty")
    if cfg.batch_size < 1 or cfg.epochs < 0 or (cfg.max_steps is not None and cfg.max_steps < 0):
        raise TrainingError("batch size must be >= 1, epochs and max steps >= 0")
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    net = build_network(cfg, num_categories).to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    targets = train
    if cfg.corrupt_labels:
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed + 1))
        targets = Batch(
            train.person,
            train.garment,
            train.target[perm],
            train.mask[perm],
            train.category,
            train.sample_ids,
        )
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    history: list[dict[str, float]] = []
    step = 0
    start = time.monotonic()
    epoch = 0
    with Progress(total_steps, "training", enabled=None if show_progress else False) as bar:
        while step < total_steps:
            net.train()
            order = torch.randperm(len(train), generator=order_gen)
            losses: list[float] = []
            for i in range(0, len(train), cfg.batch_size):
                if step >= total_steps:
                    break
                part = targets.index(order[i : i + cfg.batch_size]).to(device)
                aux = net.forward_with_aux(part.person, part.garment, part.category)
                loss = training_loss(aux, part, cfg, has_masks)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                # Cosine decay to 5% of the base rate over the planned steps.
                progress = step / max(total_steps, 1)
                for group in optimiser.param_groups:
                    group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
                optimiser.step()
                step += 1
                losses.append(float(loss.detach()))
                bar.update(postfix=f"epoch {epoch + 1} loss {losses[-1]:.4f}")
            record = {"train_loss": sum(losses) / max(len(losses), 1)}
            if len(val):
                val_metrics = evaluate_model(net, val, device)
                record.update({f"val_{k}": v for k, v in val_metrics.items()})
            history.append(record)
            if on_epoch is not None:
                on_epoch(epoch, record)
            epoch += 1
    net.eval()
    return FitResult(net.cpu(), history, step, time.monotonic() - start)


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
) -> TrainResult:
    """The `train` command: data -> fit -> log run -> package -> register."""
    from mlflow.entities import Metric, Param
    from tryon_renderer.contract import ModelContract
    from tryon_renderer.packaging import ARTIFACT_PATH, NATIVE_FORMAT, write_model_dir

    ds = open_dataset(data, data_format)
    height, width = _resolve_size(cfg, ds)
    train_samples, val_samples = ds.split("train"), ds.split("val")
    if not train_samples:
        raise TrainingError(f"{ds.root}: the train split is empty")
    registry.check_reachable()
    data_hash = dataset_hash(ds, show_progress=True)
    train_batch = load_batch(train_samples, height, width, ds.categories, label="loading train")
    val_batch = load_batch(val_samples, height, width, ds.categories, label="loading val")
    has_masks = all(s.mask is not None for s in train_samples)
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
        result = fit(cfg, train_batch, val_batch, len(ds.categories), has_masks, log_epoch)
        net = result.model
        baseline = identity_metrics(val_batch) if len(val_batch) else {}
        final = evaluate_model(net, val_batch, torch.device("cpu")) if len(val_batch) else {}
        parameters, size_bytes = model_size(net)
        latency = measure_latency_ms(net, height, width, torch.device("cpu"))
        summary = {
            **{f"final_val_{k}": v for k, v in final.items()},
            **{f"baseline_identity_{k}": v for k, v in baseline.items()},
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
    )
