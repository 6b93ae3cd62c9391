"""Model lifecycle inside the server: load (retrying with backoff), warm up, start the worker.

Why in a background task: /healthz must answer while a large model downloads, and /readyz turns
true only after load *and* warm-up, which is what Kubernetes readiness and the operator's rollout
gate key on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .batching import BatchingWorker, BatchRunner, pick_device
from .loading import LoadedModel, ModelIncompatibleError, load_model
from .precision import check_inputs, choose_precision
from .s3 import make_client
from .settings import Settings
from .shape import (
    ServingShape,
    ShapePins,
    SweepLimits,
    available_cores,
    candidate_batches,
    candidate_layouts,
    choose,
    request_p99_ms,
    sweep,
)
from .state import RendererState

log = logging.getLogger("tryon_renderer")
EXIT_INCOMPATIBLE_MODEL = 3


async def load_and_warm(state: RendererState) -> None:
    """Load the model (retrying with backoff), start the worker, warm up, then mark ready.

    Every torch call before serving runs on one thread of its own: torch fixes a thread's OpenMP
    team size at that thread's first parallel op, so a serving thread (the event loop, the codec
    threads) that had run torch before the shape set the thread count would keep the default
    team and spin it beside the forward passes.
    """
    started = process_started_at()
    since = f" ({time.time() - started:.2f} s after the process started)" if started else ""
    log.info("renderer process up%s; loading %s", since, state.settings.model_uri)
    with ThreadPoolExecutor(1, thread_name_prefix="tryon-warmup") as warmup:
        await _load_and_warm(state, warmup)


def process_started_at() -> float | None:
    """When this process started (wall clock, Linux's /proc), None where that is unknown: what
    its imports and set-up took is the time from there to the server being up."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime, after boot
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        return time.time() - (since_boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


async def _load_and_warm(state: RendererState, warmup: ThreadPoolExecutor) -> None:
    loop = asyncio.get_running_loop()
    settings = state.settings
    delay = min(1.0, settings.load_retry_max_s)
    while state.loaded is None and not state.draining:
        try:
            state.loaded = await loop.run_in_executor(warmup, _load_blocking, state)
        except ModelIncompatibleError as err:
            state.load_error = str(err)
            if settings.exit_on_incompatible_model:
                # Waiting would hide it: exiting makes it a CrashLoopBackOff the operator acts on.
                log.critical("model can never load here, exiting: %s", err)
                logging.shutdown()
                os._exit(EXIT_INCOMPATIBLE_MODEL)
            log.error("model can never load here (not retrying): %s", err)
            return
        except Exception as err:
            state.load_error = str(err)
            log.warning("model load failed, retrying in %.0fs: %s", delay, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.load_retry_max_s)
    if state.loaded is None:
        return
    loaded = state.loaded
    runner = await loop.run_in_executor(
        warmup, BatchRunner, loaded.model, pick_device(settings.device)
    )
    state.device = str(runner.device)
    started = time.monotonic()
    choice = await loop.run_in_executor(
        warmup, choose_precision, runner, loaded, settings.precision
    )
    state.precision = choice.label
    log.info("precision chosen: %s in %.2f s", choice.label, time.monotonic() - started)
    shape = await loop.run_in_executor(warmup, tune_shape, runner, loaded, settings)
    state.shape = shape
    await loop.run_in_executor(warmup, warm_up, runner, loaded, settings, shape.max_batch_size)
    worker = BatchingWorker(
        runner,
        max_batch_size=shape.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
        metrics=state.metrics,
        parallel_batches=shape.parallel_batches,
    )
    worker.start()
    state.worker = worker
    state.metrics.model_info.info(
        {
            "name": loaded.name or "",
            "version": loaded.version_label,
            "uri": loaded.uri,
            "precision": state.precision,
            "max_batch_size": str(shape.max_batch_size),
            "parallel_batches": str(shape.parallel_batches),
            "torch_threads": str(shape.torch_threads),
            "images_per_second": f"{shape.images_per_s:.2f}",
            "shape_source": shape.source,
        }
    )
    state.load_error = None
    state.ready = True
    state.metrics.ready.set(1)
    log.info(
        "model %s ready on %s in %s (max abs diff vs fp32 %.4f); serving shape %s",
        loaded.uri,
        state.device,
        choice.label,
        choice.max_abs_diff,
        shape.as_dict(),
    )


def _load_blocking(state: RendererState) -> LoadedModel:
    s = state.settings
    return load_model(
        model_uri=s.model_uri,
        model_path=s.model_path,
        cache_dir=s.cache_dir,
        s3_client=state.s3_client,
        tracking_uri=s.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
    )


def tune_shape(runner: BatchRunner, loaded: LoadedModel, settings: Settings) -> ServingShape:
    """Measure the forward at the candidate shapes on the model's check inputs; pick one.

    Leaves torch's thread count at the chosen shape's. Bounded by ``shape_tuning_max_s`` (a
    shape started before the deadline finishes).
    """
    started = time.monotonic()
    device = runner.device.type
    default_threads = torch.get_num_threads()
    pins = ShapePins(
        max_batch_size=settings.max_batch_size,
        parallel_batches=1 if device != "cpu" else settings.parallel_batches,
        torch_threads=default_threads if settings.torch_threads == 0 else settings.torch_threads,
    )
    layouts = candidate_layouts(device, available_cores(), pins, default_threads)
    batches = candidate_batches(device, pins)
    inputs = _BatchInputs(loaded)
    limits = SweepLimits(
        budget_ms=settings.latency_budget_ms,
        max_wait_ms=settings.max_wait_ms,
        deadline=started + settings.shape_tuning_max_s,
    )
    measured = sweep(
        lambda batch: runner.run(*inputs.of(batch)), torch.set_num_threads, layouts, batches, limits
    )
    best = choose(measured, settings.latency_budget_ms, settings.max_wait_ms)
    log.info(
        "serving shapes measured (batches in flight x threads, batch: img/s, p99 ms): %s",
        "; ".join(
            f"{m.layout.parallel_batches}x{m.layout.torch_threads} b{m.batch}: "
            f"{m.images_per_s:.1f}, {m.p99_ms:.0f}"
            for m in measured
        ),
    )
    torch.set_num_threads(best.layout.torch_threads)
    fits = request_p99_ms(best, settings.max_wait_ms) <= settings.latency_budget_ms
    if not fits:
        log.warning(
            "no serving shape fits the latency budget of %.0f ms; the quickest (batch %d) "
            "takes %.0f ms at p99",
            settings.latency_budget_ms,
            best.batch,
            best.p99_ms,
        )
    return ServingShape(
        max_batch_size=best.batch,
        parallel_batches=best.layout.parallel_batches,
        torch_threads=best.layout.torch_threads,
        images_per_s=best.images_per_s,
        p99_ms=best.p99_ms,
        fits_budget=fits,
        source="pinned" if pins.all_pinned else "measured",
        shapes_measured=len(measured),
        tuning_s=time.monotonic() - started,
    )


class _BatchInputs:
    """The model's check inputs (golden or synthetic photos) repeated to any batch size."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.person, self.garment, self.category = check_inputs(loaded)
        self._cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def of(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        if batch not in self._cache:
            index = torch.arange(batch) % len(self.person)
            self._cache[batch] = (self.person[index], self.garment[index], self.category[index])
        return self._cache[batch]


def warm_up(
    runner: BatchRunner, loaded: LoadedModel, settings: Settings, max_batch_size: int
) -> None:
    """Run the serving resolution at batch 1 and at power-of-two batch sizes up to the max.

    Why several sizes: CPU (oneDNN) and CUDA (cuDNN autotune) build kernels per input shape, so
    the first batch of each size is slow; warming the common sizes keeps that off user requests.
    """
    c = loaded.contract
    sizes = [1] * settings.warmup_iterations
    size = 2
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    for batch in [*sizes, max_batch_size]:
        zeros = torch.zeros(batch, 3, c.height, c.width)
        runner.run(zeros, zeros, torch.zeros(batch, dtype=torch.long))


def make_s3(settings: Settings) -> Any:
    endpoint = settings.s3_endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return make_client(endpoint, settings.s3_region, timeout_s=settings.s3_timeout_s)
