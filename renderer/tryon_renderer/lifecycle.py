"""Model lifecycle inside the server: load (retrying with backoff), warm up, start the worker.

Why in a background task: /healthz must answer while a large model downloads, and /readyz turns
true only after load *and* warm-up, which is what Kubernetes readiness and the operator's rollout
gate key on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import torch

from .batching import BatchingWorker, BatchRunner, pick_device
from .loading import LoadedModel, ModelIncompatibleError, load_model
from .precision import choose_precision
from .s3 import make_client
from .settings import Settings
from .state import RendererState

log = logging.getLogger("tryon_renderer")
EXIT_INCOMPATIBLE_MODEL = 3


async def load_and_warm(state: RendererState) -> None:
    """Load the model (retrying with backoff), start the worker, warm up, then mark ready."""
    settings = state.settings
    delay = min(1.0, settings.load_retry_max_s)
    while state.loaded is None and not state.draining:
        try:
            state.loaded = await asyncio.to_thread(_load_blocking, state)
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
    runner = BatchRunner(loaded.model, pick_device(settings.device))
    state.device = str(runner.device)
    choice = await asyncio.to_thread(choose_precision, runner, loaded, settings.precision)
    state.precision = choice.label
    await asyncio.to_thread(warm_up, runner, loaded, settings)
    worker = BatchingWorker(
        runner,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
        metrics=state.metrics,
        parallel_batches=settings.parallel_batches if runner.device.type == "cpu" else 1,
    )
    worker.start()
    state.worker = worker
    state.metrics.model_info.info(
        {
            "name": loaded.name or "",
            "version": loaded.version_label,
            "uri": loaded.uri,
            "precision": state.precision,
        }
    )
    state.load_error = None
    state.ready = True
    state.metrics.ready.set(1)
    log.info(
        "model %s ready on %s in %s (max abs diff vs fp32 %.4f)",
        loaded.uri,
        state.device,
        choice.label,
        choice.max_abs_diff,
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


def warm_up(runner: BatchRunner, loaded: LoadedModel, settings: Settings) -> None:
    """Run the serving resolution at batch 1 and at power-of-two batch sizes up to the max.

    Why several sizes: CPU (oneDNN) and CUDA (cuDNN autotune) build kernels per input shape, so
    the first batch of each size is slow; warming the common sizes keeps that off user requests.
    """
    c = loaded.contract
    sizes = [1] * settings.warmup_iterations
    size = 2
    while size < settings.max_batch_size:
        sizes.append(size)
        size *= 2
    for batch in [*sizes, settings.max_batch_size]:
        zeros = torch.zeros(batch, 3, c.height, c.width)
        runner.run(zeros, zeros, torch.zeros(batch, dtype=torch.long))


def make_s3(settings: Settings) -> Any:
    endpoint = settings.s3_endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return make_client(endpoint, settings.s3_region, timeout_s=settings.s3_timeout_s)
