"""The serving shape (batch size, batches in flight, torch threads), chosen by measurement.

Why measure instead of assume: the fastest shape depends on the device. On a 2-core AVX2 Xeon a
batch of 8 is slower per image than a batch of 1 (eager 8.7 vs 12.7 img/s, 2026-12-07); a GPU
wants large batches. Like Triton's Model Analyzer (which sweeps batch size and instance count and
keeps the best under a latency budget), the renderer times its own forward at a few shapes during
warm-up, which readiness already waits for, and serves with the fastest shape whose p99 fits
``TRYON_LATENCY_BUDGET_MS``. Any dimension the operator pins is not swept.

The decisions (candidates, when to stop growing a batch, which shape wins) are pure functions of
plain numbers; ``sweep`` is the only part that runs the model.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

# Per-image throughput this far below the best smaller batch of the same layout means the curve
# has peaked: larger batches are not measured.
PAST_PEAK_RATIO = 0.9
# Shapes within this fraction of the best forward throughput count as equally fast (the sweep's
# own noise on a 2-core VM): among them, the one with the most images in flight wins. Serving pays
# a fixed cost per batch (stacking, thread hand-offs, futures) that the forward alone does not
# show: at c=16 on 2 cores, 2 x batch 1 served 50 req/s, 2 x batch 2 56, 2 x batch 4 60, though
# their forwards were within 10 % (2026-12-07). The cap only matters under load: lightly loaded,
# batches stay small whatever it is.
EQUALLY_FAST = 0.1
CPU_BATCHES = (1, 2, 4, 8)
GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Layout:
    """How the forward passes share the device: batches in flight, torch threads for each."""

    parallel_batches: int
    torch_threads: int


@dataclass(frozen=True)
class Measurement:
    """The forward's throughput and per-batch p99 at one layout and batch size."""

    layout: Layout
    batch: int
    images_per_s: float
    p99_ms: float


@dataclass(frozen=True, kw_only=True)
class ShapePins:
    """What the operator fixed (TRYON_MAX_BATCH_SIZE, _PARALLEL_BATCHES, _TORCH_THREADS)."""

    max_batch_size: int | None = None
    parallel_batches: int | None = None
    torch_threads: int | None = None

    @property
    def all_pinned(self) -> bool:
        return None not in (self.max_batch_size, self.parallel_batches, self.torch_threads)


@dataclass(frozen=True, kw_only=True)
class ServingShape:
    """The shape the renderer serves with, and what it measured there."""

    max_batch_size: int
    parallel_batches: int
    torch_threads: int
    images_per_s: float
    p99_ms: float
    fits_budget: bool
    source: str  # "measured" (swept) or "pinned" (every dimension set by the operator)
    shapes_measured: int
    tuning_s: float

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["images_per_s"] = round(self.images_per_s, 2)
        out["p99_ms"] = round(self.p99_ms, 1)
        out["tuning_s"] = round(self.tuning_s, 2)
        return out


def available_cores() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU limit (a pod's)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def candidate_layouts(
    device_type: str, cores: int, pins: ShapePins, default_threads: int
) -> list[Layout]:
    """Layouts to measure, most likely winner first (the sweep may run out of time).

    On a CPU: one batch per core with one thread each (no OpenMP barrier between cores), one batch
    on all cores, and halves in between on larger machines. On a GPU: one batch at a time.
    """
    if device_type != "cpu":
        return [Layout(1, pins.torch_threads or default_threads)]
    if pins.parallel_batches and pins.torch_threads:
        return [Layout(pins.parallel_batches, pins.torch_threads)]
    if pins.parallel_batches:
        return [Layout(pins.parallel_batches, max(1, cores // pins.parallel_batches))]
    if pins.torch_threads:
        return [Layout(max(1, cores // pins.torch_threads), pins.torch_threads)]
    layouts = [Layout(cores, 1), Layout(1, cores)]
    if cores >= 4:
        layouts.append(Layout(cores // 2, 2))
    return list(dict.fromkeys(layouts))


def candidate_batches(device_type: str, pins: ShapePins) -> list[int]:
    """Batch sizes to measure, ascending (a pinned size alone)."""
    if pins.max_batch_size:
        return [pins.max_batch_size]
    return list(GPU_BATCHES if device_type == "cuda" else CPU_BATCHES)


def request_p99_ms(measurement: Measurement, max_wait_ms: float) -> float:
    """What a request waits at most for its batch: the gather window, then the forward."""
    return measurement.p99_ms + max_wait_ms


def stop_growing(
    measured: Measurement, best_smaller: Measurement | None, budget_ms: float, max_wait_ms: float
) -> bool:
    """Whether larger batches of this layout are not worth measuring."""
    if request_p99_ms(measured, max_wait_ms) > budget_ms:
        return True  # a larger batch only takes longer
    if best_smaller is None:
        return False
    return measured.images_per_s < PAST_PEAK_RATIO * best_smaller.images_per_s


def choose(
    measurements: Sequence[Measurement], budget_ms: float, max_wait_ms: float
) -> Measurement:
    """The fastest shape whose request p99 fits the budget; the quickest one when none fits.

    Among shapes within ``EQUALLY_FAST`` of the best throughput, the most images in flight
    (batches x size) win, then the lowest p99.
    """
    if not measurements:
        raise ValueError("no shape was measured")
    fitting = [m for m in measurements if request_p99_ms(m, max_wait_ms) <= budget_ms]
    if not fitting:
        return min(measurements, key=lambda m: m.p99_ms)
    best = max(m.images_per_s for m in fitting)
    close = [m for m in fitting if m.images_per_s >= (1 - EQUALLY_FAST) * best]
    return max(close, key=lambda m: (m.layout.parallel_batches * m.batch, -m.p99_ms))


@dataclass(frozen=True, kw_only=True)
class SweepLimits:
    """Bounds of one sweep: the latency budget, the gather window, time and repetitions."""

    budget_ms: float
    max_wait_ms: float
    deadline: float  # time.monotonic() after which no new shape is started
    min_reps: int = 3
    min_seconds: float = 0.3  # per shape, after the untimed passes
    untimed: int = 2  # per thread and shape: kernels and allocator caches warm up


def sweep(
    forward: Callable[[int], object],
    set_threads: Callable[[int], None],
    layouts: Sequence[Layout],
    batches: Sequence[int],
    limits: SweepLimits,
) -> list[Measurement]:
    """Time ``forward(batch)`` at each layout and batch size until the deadline.

    A layout's batches grow until ``stop_growing`` says so. The first shape is always measured,
    whatever the deadline, so there is something to choose from.
    """
    measurements: list[Measurement] = []
    for layout in layouts:
        set_threads(layout.torch_threads)
        best: Measurement | None = None
        for batch in batches:
            if measurements and time.monotonic() > limits.deadline:
                return measurements
            measured = _measure(forward, layout, batch, limits)
            measurements.append(measured)
            if stop_growing(measured, best, limits.budget_ms, limits.max_wait_ms):
                break
            if best is None or measured.images_per_s > best.images_per_s:
                best = measured
    return measurements


def _measure(
    forward: Callable[[int], object], layout: Layout, batch: int, limits: SweepLimits
) -> Measurement:
    """``parallel_batches`` threads each run the batch: one untimed pass, then timed ones."""

    def runs() -> list[float]:
        for _ in range(limits.untimed):  # kernels are built per shape: keep that off the timing
            forward(batch)
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < limits.min_reps or time.perf_counter() - started < limits.min_seconds:
            t0 = time.perf_counter()
            forward(batch)
            times.append(time.perf_counter() - t0)
        return times

    parallel = layout.parallel_batches
    with ThreadPoolExecutor(parallel, thread_name_prefix="tryon-shape") as pool:
        per_thread = list(pool.map(lambda _: runs(), range(parallel)))
    times = [t for thread_times in per_thread for t in thread_times]
    # Each thread's timed passes ran side by side: images over the slowest thread's timed span.
    wall = max(sum(thread_times) for thread_times in per_thread)
    images = batch * len(times)
    return Measurement(layout, batch, images / wall, _p99(times) * 1000)


def _p99(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]
