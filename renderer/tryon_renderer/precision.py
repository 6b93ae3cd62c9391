"""Which float precision the renderer computes in, and the check that keeps outputs equal.

Why: bf16 roughly doubles CPU throughput on cores with AVX512_BF16 (and is the normal mode on a
GPU), but run over the whole placement network it changes outputs by up to 0.8 on the [-1, 1]
scale: the figure and garment foregrounds are thresholds, and bf16 flips pixels across them,
which moves the moments and so the whole warp. Run only over the composition U-Net (placement,
warp and blending stay fp32) the output moves by less than one 8-bit level. So:

- a model that exposes ``composition_dtype`` (the placement network) gets its U-Net in the
  reduced dtype, everything else fp32;
- any other model gets whole-model autocast on CUDA (as before) and stays fp32 on a CPU;
- before serving, the chosen precision is compared with fp32 on the model's own golden inputs
  (synthetic ones when it ships none); with ``TRYON_PRECISION=auto`` a difference above one
  8-bit level (``EQUAL_OUTPUT_TOLERANCE``) falls back to fp32 and says so in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .golden import synthetic_garment, synthetic_person
from .images import to_tensor

if TYPE_CHECKING:
    from .batching import BatchRunner
    from .loading import LoadedModel

log = logging.getLogger("tryon_renderer")

# One 8-bit output level on the [-1, 1] scale: outputs this close encode to the same image, or
# to images one level apart.
EQUAL_OUTPUT_TOLERANCE = 2 / 255
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_flags() -> set[str]:
    """The first core's feature flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_has_bf16() -> bool:
    """Native bf16 dot products (AVX512_BF16 or AMX): where bf16 is faster, not emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def reduced_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The reduced dtype for ``TRYON_PRECISION`` on ``device``; None means fp32 throughout."""
    if setting in _DTYPES:
        return _DTYPES[setting]
    if setting != "auto":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None


@dataclass(frozen=True)
class PrecisionChoice:
    """What the renderer computes in, and how far that is from fp32 on the check inputs."""

    label: str  # "fp32", "bf16 composition", "fp16 autocast", ...
    max_abs_diff: float  # vs fp32 on the check inputs; 0 for fp32
    fell_back: bool = False  # auto chose a reduced dtype, the check failed, fp32 serves


def check_inputs(loaded: LoadedModel) -> tuple[Tensor, Tensor, Tensor]:
    """The model's golden cases (synthetic person and garment photos when it ships none)."""
    c = loaded.contract
    if loaded.golden is not None:
        persons, garments = loaded.golden.persons, loaded.golden.garments
        categories = [c.category_index(case.category) for case in loaded.golden.index.cases]
    else:
        persons = [synthetic_person(c, seed) for seed in range(2)]
        garments = [synthetic_garment(c, seed) for seed in range(2)]
        categories = [0, 0]
    return (
        torch.stack([to_tensor(img, c.height, c.width) for img in persons]),
        torch.stack([to_tensor(img, c.height, c.width) for img in garments]),
        torch.tensor(categories, dtype=torch.long),
    )


def choose_precision(runner: BatchRunner, loaded: LoadedModel, setting: str) -> PrecisionChoice:
    """Apply ``setting`` to ``runner``, compare with fp32, fall back to fp32 if auto and unequal."""
    dtype = reduced_dtype(setting, runner.device)
    runner.set_reduced(None)
    if dtype is None:
        return PrecisionChoice("fp32", 0.0)
    person, garment, category = check_inputs(loaded)
    exact = runner.run(person, garment, category)
    label = runner.set_reduced(dtype)
    if label == "fp32":  # this model has no reduced path on this device
        return PrecisionChoice("fp32", 0.0)
    diff = float((runner.run(person, garment, category) - exact).abs().max())
    if diff > EQUAL_OUTPUT_TOLERANCE and setting == "auto":
        runner.set_reduced(None)
        log.warning(
            "%s differs from fp32 by %.4f (more than one 8-bit level, %.4f) on the check "
            "inputs; serving in fp32",
            label,
            diff,
            EQUAL_OUTPUT_TOLERANCE,
        )
        return PrecisionChoice("fp32", 0.0, fell_back=True)
    if diff > EQUAL_OUTPUT_TOLERANCE:
        log.warning("%s (asked for) differs from fp32 by %.4f on the check inputs", label, diff)
    return PrecisionChoice(label, diff)
