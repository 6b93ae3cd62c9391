"""One model worker per device, fed by an asyncio queue with dynamic micro-batching.

Why: a try-on forward pass costs about the same for one image as for a few, so requests that
arrive close together are stacked into one batch (up to `max_batch_size`, waiting at most
`max_wait_s` for company). The queue is bounded: when full, callers get 429 + Retry-After at once
instead of unbounded latency. Forward passes run on a dedicated thread so the event loop keeps
accepting and decoding requests while the device is busy (natural pipelining).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .errors import ApiError, NotReadyError, OverloadedError
from .metrics import Metrics


@dataclass
class WorkItem:
    """One request waiting for the model."""

    person: Tensor
    garment: Tensor
    category: int
    future: asyncio.Future[Tensor]
    enqueued_at: float = field(default_factory=time.perf_counter)


def pick_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BatchRunner:
    """Runs a stacked batch through the model with the fast inference settings for a device.

    fp32 until ``set_reduced`` picks a reduced dtype (``precision.choose_precision`` does, after
    checking the outputs against fp32).
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device = device
        self.model = model.eval().to(device)
        self.channels_last = True
        with contextlib.suppress(RuntimeError, TypeError):
            self.model = self.model.to(memory_format=torch.channels_last)
        # Whole-model autocast: for networks without a reduced-precision stage of their own.
        self.autocast_dtype: torch.dtype | None = None
        self.precision = "fp32"

    def set_reduced(self, dtype: torch.dtype | None) -> str:
        """Compute in ``dtype`` where this model and device allow it; returns the label in use.

        A model with a ``composition_dtype`` runs only that stage reduced. Any other model is
        autocast whole on CUDA and stays fp32 on a CPU (its reduced outputs are not equal).
        """
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype) if dtype else None
        self.autocast_dtype = None
        if hasattr(self.model, "composition_dtype"):
            setattr(self.model, "composition_dtype", dtype)  # noqa: B010 - duck-typed stage
            self.precision = f"{name} composition" if name else "fp32"
        elif name and self.device.type == "cuda":
            self.autocast_dtype = dtype
            self.precision = f"{name} autocast"
        else:
            self.precision = "fp32"
        return self.precision

    def _to_device(self, batch: Tensor) -> Tensor:
        """Pinned host memory + non_blocking copy on CUDA; channels_last layout everywhere."""
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last)

    def run(self, person: Tensor, garment: Tensor, category: Tensor) -> Tensor:
        """Forward a (B, 3, H, W) batch; returns float32 output on the CPU."""
        with torch.inference_mode():
            p, g = self._to_device(person), self._to_device(garment)
            c = category.to(self.device)
            out: Tensor
            if self.autocast_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                    out = self.model(p, g, c)
            else:
                out = self.model(p, g, c)
            return out.float().contiguous().cpu()


class BatchingWorker:
    """Owns the queue and the single worker task for one device."""

    def __init__(
        self,
        runner: BatchRunner,
        *,
        max_batch_size: int = 8,
        max_wait_s: float = 0.005,
        max_queue: int = 64,
        metrics: Metrics | None = None,
        parallel_batches: int = 1,
    ) -> None:
        self.runner = runner
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait_s = max(0.0, max_wait_s)
        self.max_queue = max(1, max_queue)
        self.metrics = metrics
        self._pending: collections.deque[WorkItem] = collections.deque()
        self._wakeup = asyncio.Event()
        self._accepting = False
        # Batches in flight on the device. 1 on a GPU; on a CPU, one per core with one torch
        # thread each beats one batch on all cores (no OpenMP barrier stalls under contention).
        self.parallel_batches = max(1, parallel_batches)
        self._busy = 0
        self._slots = asyncio.Semaphore(self.parallel_batches)
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=self.parallel_batches, thread_name_prefix="tryon-model"
        )

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._accepting = True
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="tryon-worker")

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop accepting, let queued work finish (bounded), then end the worker."""
        self._accepting = False
        deadline = time.monotonic() + drain_timeout_s
        while (self._pending or self._busy) and time.monotonic() < deadline:
            self._wakeup.set()
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(NotReadyError("server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def submit(
        self, person: Tensor, garment: Tensor, category: int, timeout_s: float
    ) -> Tensor:
        """Queue one request and wait for its output (3, H, W); 429 when the queue is full."""
        if not self._accepting:
            raise NotReadyError("server is draining", retry_after_s=1)
        if len(self._pending) >= self.max_queue:
            raise OverloadedError("too many queued requests, retry later", retry_after_s=1)
        future: asyncio.Future[Tensor] = asyncio.get_running_loop().create_future()
        self._pending.append(WorkItem(person, garment, category, future))
        self._set_depth()
        self._wakeup.set()
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ApiError(
                f"request timed out after {timeout_s:.1f}s", status=504, code="timeout"
            ) from None

    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._pending))

    async def _gather(self) -> list[WorkItem]:
        """Wait for the first item, then up to max_wait_s for more, up to max_batch_size."""
        while not self._pending:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = time.monotonic() + self.max_wait_s
        while len(self._pending) < self.max_batch_size and self._accepting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), remaining)
        count = min(self.max_batch_size, len(self._pending))
        batch = [self._pending.popleft() for _ in range(count)]
        self._set_depth()
        return [item for item in batch if not item.future.done()]

    async def _loop(self) -> None:
        """Gather a batch whenever a device slot is free and run it without blocking the loop."""
        while True:
            await self._slots.acquire()
            try:
                batch = await self._gather()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            self._busy += 1
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list[WorkItem]) -> None:
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, batch)
        except Exception as err:  # a model fault must fail the batch, not the worker
            _fail_all(batch, err)
        else:
            for item, out in zip(batch, outputs, strict=True):
                if not item.future.done():
                    item.future.set_result(out)
        finally:
            self._busy -= 1
            self._slots.release()

    def _run_batch(self, batch: list[WorkItem]) -> list[Tensor]:
        start = time.perf_counter()
        person = torch.stack([item.person for item in batch])
        garment = torch.stack([item.garment for item in batch])
        category = torch.tensor([item.category for item in batch], dtype=torch.long)
        out = self.runner.run(person, garment, category)
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(batch))
            self.metrics.inference_time.observe(time.perf_counter() - start)
        return list(out.unbind(0))


def _fail_all(batch: list[WorkItem], err: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(err)


def timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    """Run fn and return (result, seconds)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
