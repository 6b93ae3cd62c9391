"""The batching worker: micro-batches form, queue bounds hold, timeouts and drain behave."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch
from tryon_renderer.batching import BatchingWorker, BatchRunner
from tryon_renderer.errors import ApiError, NotReadyError, OverloadedError
from tryon_renderer.metrics import Metrics
from tryon_renderer.network import TryOnConfig, TryOnNet

pytestmark = pytest.mark.unit
H, W = 32, 32


class GatedRunner(BatchRunner):
    """A real runner whose forward waits on a gate, to hold the worker busy on demand."""

    def __init__(self) -> None:
        super().__init__(TryOnNet(TryOnConfig(base_width=4)), torch.device("cpu"))
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def run(self, person: torch.Tensor, garment: torch.Tensor, category: torch.Tensor):
        self.gate.wait(timeout=10)
        self.batches.append(person.shape[0])
        return super().run(person, garment, category)


def _x() -> torch.Tensor:
    return torch.rand(3, H, W) * 2 - 1


async def test_concurrent_requests_are_micro_batched() -> None:
    runner, metrics = GatedRunner(), Metrics()
    worker = BatchingWorker(runner, max_batch_size=4, max_wait_s=0.05, metrics=metrics)
    worker.start()
    runner.gate.clear()
    first = asyncio.create_task(worker.submit(_x(), _x(), 0, 10))
    await asyncio.sleep(0.1)  # the first request is now held inside the forward pass
    rest = [asyncio.create_task(worker.submit(_x(), _x(), 1, 10)) for _ in range(8)]
    await asyncio.sleep(0.05)
    assert worker.queue_depth == 8
    runner.gate.set()
    outputs = await asyncio.gather(first, *rest)
    await worker.stop()
    assert all(o.shape == (3, H, W) for o in outputs)
    assert runner.batches == [1, 4, 4]
    assert metrics.batch_size._sum.get() == 9  # type: ignore[attr-defined]


async def test_batched_results_match_single_requests() -> None:
    worker = BatchingWorker(GatedRunner(), max_batch_size=8, max_wait_s=0.05)
    worker.start()
    inputs = [(_x(), _x(), i % 3) for i in range(5)]
    batched = await asyncio.gather(*(worker.submit(p, g, c, 10) for p, g, c in inputs))
    singles = [await worker.submit(p, g, c, 10) for p, g, c in inputs]
    await worker.stop()
    for a, b in zip(batched, singles, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


async def test_full_queue_rejects_with_retry_after() -> None:
    runner = GatedRunner()
    worker = BatchingWorker(runner, max_batch_size=1, max_wait_s=0, max_queue=2)
    worker.start()
    runner.gate.clear()
    held = asyncio.create_task(worker.submit(_x(), _x(), 0, 10))
    await asyncio.sleep(0.1)
    queued = [asyncio.create_task(worker.submit(_x(), _x(), 0, 10)) for _ in range(2)]
    await asyncio.sleep(0.02)
    with pytest.raises(OverloadedError) as info:
        await worker.submit(_x(), _x(), 0, 10)
    assert info.value.status == 429 and info.value.retry_after_s
    runner.gate.set()
    await asyncio.gather(held, *queued)
    await worker.stop()


async def test_request_timeout_is_504_and_worker_survives() -> None:
    runner = GatedRunner()
    worker = BatchingWorker(runner, max_batch_size=1, max_wait_s=0)
    worker.start()
    runner.gate.clear()
    with pytest.raises(ApiError) as info:
        await worker.submit(_x(), _x(), 0, 0.2)
    assert info.value.status == 504
    runner.gate.set()
    out = await worker.submit(_x(), _x(), 0, 10)
    assert out.isfinite().all()
    await worker.stop()


async def test_stop_drains_queued_work_then_refuses() -> None:
    runner = GatedRunner()
    worker = BatchingWorker(runner, max_batch_size=2, max_wait_s=0)
    worker.start()
    runner.gate.clear()
    pending = [asyncio.create_task(worker.submit(_x(), _x(), 0, 10)) for _ in range(5)]
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(worker.stop(drain_timeout_s=10))
    await asyncio.sleep(0.05)
    with pytest.raises(NotReadyError):
        await worker.submit(_x(), _x(), 0, 10)
    runner.gate.set()
    await stopping
    results = await asyncio.gather(*pending)
    assert len(results) == 5 and sum(runner.batches) == 5


async def test_model_exception_fails_batch_not_worker() -> None:
    class Exploding(GatedRunner):
        calls = 0

        def run(self, person, garment, category):
            Exploding.calls += 1
            if Exploding.calls == 1:
                raise RuntimeError("CUDA error: device-side assert")
            return super().run(person, garment, category)

    worker = BatchingWorker(Exploding(), max_batch_size=1, max_wait_s=0)
    worker.start()
    with pytest.raises(RuntimeError, match="device-side"):
        await worker.submit(_x(), _x(), 0, 10)
    assert (await worker.submit(_x(), _x(), 0, 10)).shape == (3, H, W)
    await worker.stop()


async def test_parallel_batches_run_concurrently_on_cpu() -> None:
    """With two device slots, a second batch starts while the first is still running."""
    runner = GatedRunner()
    worker = BatchingWorker(runner, max_batch_size=1, max_wait_s=0, parallel_batches=2)
    worker.start()
    runner.gate.clear()
    tasks = [asyncio.create_task(worker.submit(_x(), _x(), 0, 10)) for _ in range(3)]
    deadline = asyncio.get_running_loop().time() + 5
    while worker._busy < 2:  # both slots taken while the gate is closed
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert worker.queue_depth == 1
    runner.gate.set()
    assert len(await asyncio.gather(*tasks)) == 3
    await worker.stop()
    assert runner.batches == [1, 1, 1]
