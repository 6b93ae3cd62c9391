"""The training loop: fit a fresh try-on network on a `Batch`, optionally data-parallel.

Recipe for the default network (`tryon-place-v1`, `tryon_renderer.placement`):

- labels derived once from the training set (`labels.py`): where the garment shows in each
  target, and the centre and spread of that region;
- the placement head starts from a least-squares fit of those centres and spreads on the figure's
  moments (a linear regression, solved exactly), then everything trains jointly;
- loss: L1 on the image and inside the try-on mask, L1 of the predicted placement, BCE of the
  keep-person map against the mask, L1 of the rendered colours where the mask is not garment;
- each sample is mirrored left-right with probability 1/2 (seeded per epoch);
- Adam, cosine decay to 5% of the rate, gradient clipping.

The older `tryon-afn-v1` network keeps its own loss (image, mask, warp L1 and blend-mask BCE).

Data parallel: the same seeded order on every rank through a `DistributedSampler`; each rank takes
its share of every global batch of `batch_size` samples, so one process and N processes take the
same optimiser steps on the same samples, and DDP averages the gradients.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - conventional alias
from torch import nn
from torch.utils.data import DistributedSampler
from tryon_renderer.network import TryOnNetwork
from tryon_renderer.placement import PlacementTryOnNet

from .data import Batch
from .distributed import SINGLE, DistContext
from .evaluate import evaluate_model, pick_device
from .labels import fit_placement, placement_targets, silhouette_labels
from .progress import Progress

DEFAULT_ARCH = "tryon-place-v1"
LEGACY_ARCH = "tryon-afn-v1"


class TrainingError(Exception):
    """Training cannot start or finish (bad settings, empty data, a failed peer process)."""


@dataclass
class TrainConfig:
    epochs: int = 20
    max_steps: int | None = None  # stop after this many optimiser steps (0: untrained)
    batch_size: int = 4  # global: split evenly across data-parallel ranks
    lr: float = 5e-3
    base_width: int = 16
    levels: int = 3
    height: int | None = None  # default: the dataset's declared size
    width: int | None = None
    seed: int = 0
    device: str = "auto"
    corrupt_labels: bool = False  # shuffle targets between samples (a deliberately bad model)
    arch: str = DEFAULT_ARCH
    mirror: bool = True  # random left-right mirroring of whole samples
    mask_weight: float = 1.0
    placement_weight: float = 10.0
    keep_weight: float = 0.5
    render_weight: float = 0.5
    warp_weight: float = 0.5  # legacy network only
    blend_weight: float = 0.1  # legacy network only
    grad_clip: float = 1.0


@dataclass
class FitResult:
    model: TryOnNetwork
    history: list[dict[str, float]]
    steps: int
    seconds: float


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def build_network(cfg: TrainConfig, num_categories: int) -> TryOnNetwork:
    from tryon_renderer.network import ARCHITECTURES, build_network

    if cfg.arch not in ARCHITECTURES:
        raise TrainingError(f"unknown --arch {cfg.arch!r}; choose one of {list(ARCHITECTURES)}")
    config = {"base_width": cfg.base_width, "levels": cfg.levels, "num_categories": num_categories}
    return build_network(cfg.arch, config)


class _WithAux(nn.Module):
    """`forward` = the network's `forward_with_aux`, so DDP's hooks see the training pass."""

    def __init__(self, net: TryOnNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, person: torch.Tensor, garment: torch.Tensor, category: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.net.forward_with_aux(person, garment, category)
        return out


def _masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    area = weight.sum().clamp_min(1.0) * a.shape[1]
    return ((a - b).abs() * weight).sum() / area


def training_loss(
    aux: dict[str, torch.Tensor],
    batch: Batch,
    silhouette: torch.Tensor | None,
    cfg: TrainConfig,
    has_masks: bool,
) -> torch.Tensor:
    """The recipe's loss for one (augmented) batch; `silhouette` labels for the default net."""
    loss = F.l1_loss(aux["image"], batch.target)
    if not has_masks:
        return loss
    m = batch.mask
    loss = loss + cfg.mask_weight * _masked_l1(aux["image"], batch.target, m)
    if cfg.arch == LEGACY_ARCH:
        loss = loss + cfg.warp_weight * _masked_l1(aux["warped"], batch.target, m)
        blend = aux["mask"].clamp(1e-4, 1 - 1e-4)
        return loss + cfg.blend_weight * F.binary_cross_entropy(blend, m)
    assert silhouette is not None
    shows = silhouette.sum(dim=(1, 2, 3)) > 4
    if bool(shows.any()):
        err = (aux["placement"] - placement_targets(silhouette)).abs()[shows]
        loss = loss + cfg.placement_weight * err.mean()
    loss = loss + cfg.keep_weight * F.binary_cross_entropy_with_logits(aux["keep_logit"], 1 - m)
    rendered_region = (m - silhouette).clamp(0.0, 1.0)
    return loss + cfg.render_weight * _masked_l1(aux["rendered"], batch.target, rendered_region)


def _mirror(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    return torch.where(flip.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)


def _check(cfg: TrainConfig, train: Batch, ctx: DistContext) -> None:
    if len(train) == 0:
        raise TrainingError("the train split is empty")
    if cfg.batch_size < 1 or cfg.epochs < 0 or (cfg.max_steps is not None and cfg.max_steps < 0):
        raise TrainingError("batch size must be >= 1, epochs and max steps >= 0")
    if cfg.batch_size % ctx.world_size:
        raise TrainingError(
            f"batch size {cfg.batch_size} must be divisible by the {ctx.world_size} processes"
        )


@dataclass
class FitOptions:
    """How `fit` reports and where it runs (everything that is not the recipe)."""

    has_masks: bool = True
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
    show_progress: bool = True
    ctx: DistContext = SINGLE


def _corrupted(train: Batch, seed: int) -> Batch:
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 1))
    return Batch(
        train.person,
        train.garment,
        train.target[perm],
        train.mask[perm],
        train.category,
        train.sample_ids,
    )


class _Loop:
    """One training run: the prepared data, the (DDP-wrapped) model and the optimiser."""

    def __init__(self, cfg: TrainConfig, train: Batch, num_categories: int, opts: FitOptions):
        self.cfg, self.opts, self.ctx = cfg, opts, opts.ctx
        self.device = self.ctx.device(pick_device(cfg.device))
        self.net = build_network(cfg, num_categories)
        self.data = _corrupted(train, cfg.seed) if cfg.corrupt_labels else train
        steps = cfg.epochs * math.ceil(len(train) / cfg.batch_size)
        self.total_steps = steps if cfg.max_steps is None else min(steps, cfg.max_steps)
        self.silhouette: torch.Tensor | None = None
        if cfg.arch != LEGACY_ARCH and opts.has_masks:
            d = self.data
            self.silhouette = silhouette_labels(d.target, d.garment, d.mask)
            if self.total_steps > 0 and isinstance(self.net, PlacementTryOnNet):
                # `--max-steps 0` stays the untrained network
                valid = self.silhouette.sum(dim=(1, 2, 3)) > 4
                targets = placement_targets(self.silhouette)
                fit_placement(self.net, d.person, d.category, targets, valid)
        self.net = self.net.to(self.device)
        self.model: nn.Module = _WithAux(self.net)
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sampler: DistributedSampler[int] = DistributedSampler(
            range(len(train)),  # type: ignore[arg-type]  # any sized sequence works
            num_replicas=self.ctx.world_size,
            rank=self.ctx.rank,
            shuffle=True,
            seed=cfg.seed,
        )
        self.step = 0

    def _part(self, idx: torch.Tensor, flips: torch.Tensor) -> tuple[Batch, torch.Tensor | None]:
        part = self.data.index(idx)
        sil = self.silhouette[idx] if self.silhouette is not None else None
        if self.cfg.mirror:
            flip = flips[idx] < 0.5
            part = Batch(
                _mirror(part.person, flip),
                _mirror(part.garment, flip),
                _mirror(part.target, flip),
                _mirror(part.mask, flip),
                part.category,
                part.sample_ids,
            )
            sil = _mirror(sil, flip) if sil is not None else None
        return part.to(self.device), sil.to(self.device) if sil is not None else None

    def _train_step(self, part: Batch, sil: torch.Tensor | None) -> float:
        aux = self.model(part.person, part.garment, part.category)
        loss = training_loss(aux, part, sil, self.cfg, self.opts.has_masks)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        # Cosine decay to 5% of the base rate over the planned steps.
        progress = self.step / max(self.total_steps, 1)
        for group in self.optimiser.param_groups:
            group["lr"] = self.cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        self.optimiser.step()
        self.step += 1
        return float(loss.detach())

    def epoch(self, epoch: int, bar: Progress) -> list[float]:
        """One pass over this rank's share of the seeded order; returns the step losses."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.int64)
        flips = torch.rand(
            len(self.data), generator=torch.Generator().manual_seed(self.cfg.seed + epoch)
        )
        local_batch = self.cfg.batch_size // self.ctx.world_size
        losses: list[float] = []
        for i in range(0, len(order), local_batch):
            if self.step >= self.total_steps:
                break
            losses.append(self._train_step(*self._part(order[i : i + local_batch], flips)))
            bar.update(postfix=f"epoch {epoch + 1} loss {losses[-1]:.4f}")
        return losses


def fit(
    cfg: TrainConfig,
    train: Batch,
    val: Batch,
    num_categories: int,
    opts: FitOptions | None = None,
) -> FitResult:
    """Train a fresh network on `train`, evaluating on `val` after every epoch (rank 0)."""
    opts = opts or FitOptions()
    ctx = opts.ctx
    _check(cfg, train, ctx)
    seed_everything(cfg.seed)
    if pick_device(cfg.device).type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    loop = _Loop(cfg, train, num_categories, opts)
    history: list[dict[str, float]] = []
    start = time.monotonic()
    epoch = 0
    show = opts.show_progress and ctx.is_main
    with Progress(loop.total_steps, "training", enabled=None if show else False) as bar:
        while loop.step < loop.total_steps:
            losses = loop.epoch(epoch, bar)
            record = {"train_loss": sum(losses) / max(len(losses), 1)}
            if len(val) and ctx.is_main:
                val_metrics = evaluate_model(loop.net, val, loop.device)
                record.update({f"val_{k}": v for k, v in val_metrics.items()})
            history.append(record)
            if opts.on_epoch is not None and ctx.is_main:
                opts.on_epoch(epoch, record)
            epoch += 1
    loop.net.eval()
    return FitResult(loop.net.cpu(), history, loop.step, time.monotonic() - start)
