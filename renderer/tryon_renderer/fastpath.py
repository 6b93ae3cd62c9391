"""CPU inference paths for a served network and how fast each is: eager vs faster variants.

Used by `bench/renderer_bench.py` (the raw forward table).

Each candidate runs the same weights on the same inputs; its output is compared with eager fp32
(max abs difference on the [-1, 1] scale, tolerance `TOLERANCE[path]`), and a path that is not
available here (no AVX512_BF16, torch.compile failing) is reported as skipped, not hidden.
Candidates are measured interleaved (round-robin, median of rounds) on a noisy shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from .contract import ModelContract
from .golden import synthetic_garment, synthetic_person
from .images import to_tensor
from .precision import EQUAL_OUTPUT_TOLERANCE, cpu_flags, cpu_has_bf16

# Max abs output difference vs eager fp32 allowed per path ([-1, 1] scale; one 8-bit output
# level is 2/255 = 0.0078: compile fuses float ops, so it may differ by less than one level).
# "Equal outputs" means within one level; whole-model bf16 is listed to show why it is not used.
TOLERANCE = {
    "eager": 0.0,
    "channels_last": 1e-4,
    "compile": EQUAL_OUTPUT_TOLERANCE,
    "bf16_composition": EQUAL_OUTPUT_TOLERANCE,
    "bf16": EQUAL_OUTPUT_TOLERANCE,
}


def cpu_mhz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return float("nan")


def peak_gflops_per_core() -> tuple[float, str]:
    """FP32 peak of one core and how it is known (flags + clock, not a measurement)."""
    flags, mhz = cpu_flags(), cpu_mhz()
    if "avx512f" in flags and "avx512_bf16" in flags and "amx_tile" not in flags:
        per_cycle, why = 32, "AMD Zen 4 (AVX-512 + BF16, no AMX): 2 FMA pipes x 8 fp32 x 2"
    elif "avx512f" in flags:
        per_cycle, why = 64, "AVX-512 with 2 FMA units: 2 x 16 fp32 x 2"
    elif "avx2" in flags:
        per_cycle, why = 32, "AVX2 with 2 FMA units: 2 x 8 fp32 x 2"
    else:
        per_cycle, why = 8, "no AVX2: assumed 8 fp32 FLOP/cycle"
    return per_cycle * mhz / 1000, f"{why} FLOP/cycle x {mhz:.0f} MHz (/proc/cpuinfo)"


def gflop_per_image(model: nn.Module, height: int, width: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, height, width)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x, x, torch.zeros(1, dtype=torch.long))
    return float(counter.get_total_flops()) / 1e9


def _channels_last_copy(model: nn.Module) -> nn.Module:
    copy = type(model)(model.config).eval()
    copy.load_state_dict(model.state_dict())
    return copy.to(memory_format=torch.channels_last)


def candidates(model: nn.Module) -> dict[str, Callable[[Tensor, Tensor, Tensor], Tensor] | str]:
    """Forward functions per path, or the reason a path is unavailable."""
    eager = model.eval()
    cl = _channels_last_copy(model)

    def run_cl(p: Tensor, g: Tensor, c: Tensor) -> Tensor:
        fmt = torch.channels_last
        out: Tensor = cl(p.contiguous(memory_format=fmt), g.contiguous(memory_format=fmt), c)
        return out

    def run_bf16(p: Tensor, g: Tensor, c: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return run_cl(p, g, c).float()

    paths: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor] | str] = {
        "eager": lambda p, g, c: eager(p, g, c),
        "channels_last": run_cl,
    }
    try:
        compiled = torch.compile(cl, dynamic=False)
        paths["compile"] = lambda p, g, c: compiled(p, g, c)
    except Exception as err:  # no compiler toolchain: report, do not fail the benchmark
        paths["compile"] = f"unavailable: {type(err).__name__}"
    if not cpu_has_bf16():
        paths["bf16_composition"] = paths["bf16"] = "unavailable: CPU lacks native bf16"
        return paths
    if hasattr(model, "composition_dtype"):
        mixed = _channels_last_copy(model)
        setattr(mixed, "composition_dtype", torch.bfloat16)  # noqa: B010 - duck-typed stage

        def run_mixed(p: Tensor, g: Tensor, c: Tensor) -> Tensor:
            fmt = torch.channels_last
            out: Tensor = mixed(p.contiguous(memory_format=fmt), g.contiguous(memory_format=fmt), c)
            return out

        paths["bf16_composition"] = run_mixed
    else:
        paths["bf16_composition"] = "unavailable: the network has no composition stage"
    paths["bf16"] = run_bf16
    return paths


def photo_batch(batch: int, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Synthetic person and garment photos (not noise: the placement keys on real outlines)."""
    contract = ModelContract(height=height, width=width)
    person = [to_tensor(synthetic_person(contract, i), height, width) for i in range(batch)]
    garment = [to_tensor(synthetic_garment(contract, i), height, width) for i in range(batch)]
    return torch.stack(person), torch.stack(garment), torch.arange(batch) % 3


def measure(
    model: nn.Module, height: int, width: int, batches: list[int], rounds: int = 5
) -> list[dict[str, object]]:
    """Rows: path, batch, img/s, max |diff| vs eager, within tolerance (or a skip reason)."""
    paths = candidates(model)
    rows: list[dict[str, object]] = []
    for batch in batches:
        p, g, c = photo_batch(batch, height, width)
        with torch.inference_mode():
            reference = model(p, g, c)
            live: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {}
            diffs: dict[str, float] = {}
            for name, fn in paths.items():
                if isinstance(fn, str):
                    rows.append({"path": name, "batch": batch, "skipped": fn})
                    continue
                try:
                    out = fn(p, g, c)  # warm-up (and compilation)
                    fn(p, g, c)
                except Exception as err:
                    rows.append({"path": name, "batch": batch, "skipped": f"failed: {err}"[:80]})
                    continue
                live[name] = fn
                diffs[name] = float((out.float() - reference).abs().max())
            times: dict[str, list[float]] = {name: [] for name in live}
            for _ in range(rounds):
                for name, fn in live.items():
                    start = time.perf_counter()
                    fn(p, g, c)
                    times[name].append(time.perf_counter() - start)
        for name in live:
            rows.append(
                {
                    "path": name,
                    "batch": batch,
                    "img_s": batch / statistics.median(times[name]),
                    "max_diff": diffs[name],
                    "ok": diffs[name] <= TOLERANCE[name],
                }
            )
    return rows


def table(rows: list[dict[str, object]], gflop: float, peak: float) -> str:
    eager = {r["batch"]: r["img_s"] for r in rows if r["path"] == "eager" and "img_s" in r}
    lines = [
        "| path | batch | img/s | vs eager | GFLOP/s | % of 1-core peak | max abs diff | "
        "within tolerance |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['path']} | {r['batch']} | - | - | - | - | - | {r['skipped']} |")
            continue
        img_s = float(r["img_s"])  # type: ignore[arg-type]
        ratio = img_s / float(eager[r["batch"]])  # type: ignore[arg-type]
        achieved = img_s * gflop
        lines.append(
            f"| {r['path']} | {r['batch']} | {img_s:.2f} | {ratio:.2f}x | {achieved:.1f} "
            f"| {achieved / peak:.0%} | {r['max_diff']:.2e} | "
            f"{'yes' if r['ok'] else 'NO'} (<= {TOLERANCE[str(r['path'])]:.2g}) |"
        )
    return "\n".join(lines)
