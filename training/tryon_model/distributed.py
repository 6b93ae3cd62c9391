"""Data-parallel training under `torchrun`: process group, ranks, and what each rank does.

`torchrun --nproc-per-node N -m tryon_model.cli train ...` starts N copies of the command; each
reads RANK / WORLD_SIZE / LOCAL_RANK from the environment. Every rank trains on its share of each
global batch (a `DistributedSampler` over the same seeded order), gradients are averaged by
PyTorch DDP (gloo on CPU, nccl on CUDA), and rank 0 alone talks to MLflow: it logs the run,
packages the model and registers the version. Without those variables the command runs as one
process, exactly as before.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# A peer that stops answering fails the collective after this long instead of hanging forever
# (a peer that dies outright is noticed at once: its sockets close).
COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=120)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job; `world_size == 1` means no process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        """One GPU per local rank under torchrun; CPU stays CPU."""
        if requested.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return requested


SINGLE = DistContext()


def from_env(device: torch.device) -> DistContext:
    """Join the process group torchrun set up (no-op outside torchrun or with one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return DistContext(rank, world, local_rank, backend)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
