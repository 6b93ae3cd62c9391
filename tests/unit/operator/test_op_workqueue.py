"""The one work queue: a loop per object (no kopf timer, so no finalizer), pokes, one error
policy, workers shared by all objects."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tryon_operator.api.errors import InvalidSpecError, KubeConflictError, KubeError
from tryon_operator.api.models import TryOnModelStatus
from tryon_operator.reconcile import ReconcileResult
from tryon_operator.runtime.workqueue import WorkQueue

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

STEADY = ReconcileResult(TryOnModelStatus(), "Steady", None, False)


def recording(**options) -> tuple[WorkQueue, list[str]]:
    """A WorkQueue whose reconcile only records the names it was called for."""
    calls: list[str] = []
    return WorkQueue(lambda ns, n: calls.append(n) or STEADY, **options), calls


async def until(check, seconds=3.0):
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling a plain predicate, bounded by timeout
            await asyncio.sleep(0.01)


async def test_each_known_object_is_reconciled_again_and_again():
    calls: list[tuple[str, str]] = []
    queue = WorkQueue(lambda ns, n: calls.append((ns, n)) or STEADY, interval=0.02)
    queue.ensure("shop", "dress")
    await until(lambda: len(calls) >= 3)
    await queue.stop()
    assert set(calls) == {("shop", "dress")}


async def test_a_gone_object_ends_its_loop():
    queue = WorkQueue(lambda ns, n: None, interval=0.01)
    queue.ensure("shop", "dress")
    await until(lambda: queue.known == [])


async def test_forget_stops_reconciling():
    queue, calls = recording(interval=0.01)
    queue.ensure("shop", "dress")
    await until(lambda: calls)
    queue.forget("shop", "dress")
    seen = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) <= seen + 1


async def test_errors_are_retried_not_fatal():
    calls: list[int] = []

    def flaky(ns, n):
        calls.append(1)
        if len(calls) == 1:
            raise KubeError("apiserver hiccup")
        return STEADY

    queue = WorkQueue(flaky, interval=0.01)
    queue.ensure("shop", "dress")
    await until(lambda: len(calls) >= 2)
    await queue.stop()


# ----------------------------------------------------------------- wake-ups (poke)


async def known_and_reconciled(queue: WorkQueue, calls: list[str], *names: str) -> None:
    """Ensures each object and waits for its first reconcile, then forgets the calls so far."""
    for name in names:
        queue.ensure("shop", name)
    await until(lambda: sorted(calls) == sorted(names))
    calls.clear()


async def test_a_new_object_is_reconciled_at_once():
    queue, calls = recording(interval=60)
    queue.ensure("shop", "dress")
    await until(lambda: calls == ["dress"], seconds=1.0)
    await queue.stop()


async def test_a_poke_reconciles_at_once_despite_a_long_interval():
    queue, calls = recording(interval=60, coalesce=0.01)
    await known_and_reconciled(queue, calls, "dress")
    await asyncio.sleep(0.05)
    assert calls == []

    assert queue.poke("shop", "dress") is True
    await until(lambda: calls == ["dress"], seconds=1.0)
    await queue.stop()


async def test_a_burst_of_pokes_costs_one_reconcile():
    queue, calls = recording(interval=60, coalesce=0.1)
    await known_and_reconciled(queue, calls, "dress")
    for _ in range(5):  # two pods Ready, then the Deployment's status, ...
        queue.poke("shop", "dress")
        await asyncio.sleep(0.01)
    await until(lambda: calls)
    await asyncio.sleep(0.2)
    await queue.stop()
    assert calls == ["dress"]


async def test_a_poke_during_a_reconcile_brings_exactly_one_more():
    release = threading.Event()
    calls: list[str] = []

    def slow(ns, n):
        calls.append(n)
        if len(calls) == 1:
            release.wait(2)
        return STEADY

    queue = WorkQueue(slow, interval=60, coalesce=0.01)
    queue.ensure("shop", "dress")
    queue.poke("shop", "dress")
    await until(lambda: calls)
    queue.poke("shop", "dress")  # the pod turned Ready while the first reconcile read
    queue.poke("shop", "dress")
    release.set()
    await until(lambda: len(calls) == 2)
    await asyncio.sleep(0.1)
    await queue.stop()
    assert len(calls) == 2


async def test_a_poke_wakes_only_its_own_object():
    queue, calls = recording(interval=60, coalesce=0.01)
    await known_and_reconciled(queue, calls, "dress", "shirt")
    queue.poke("shop", "shirt")
    await until(lambda: calls)
    await asyncio.sleep(0.05)
    await queue.stop()
    assert calls == ["shirt"]


async def test_poking_an_unknown_or_forgotten_object_is_a_no_op():
    queue = WorkQueue(lambda ns, n: STEADY, interval=60)
    assert queue.poke("shop", "ghost") is False
    queue.ensure("shop", "dress")
    queue.forget("shop", "dress")
    assert queue.poke("shop", "dress") is False
    assert queue.pokes == 0


async def test_reconciles_run_on_the_given_executor():
    threads: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile") as pool:
        queue = WorkQueue(lambda ns, n: threads.append(threading.current_thread().name)
                            or STEADY, interval=0.01, executor=pool)
        queue.ensure("shop", "dress")
        await until(lambda: threads)
        await queue.stop()
    assert threads[0].startswith("reconcile")


async def test_jitter_spreads_the_first_resync_within_one_interval():
    queue, calls = recording(interval=0.4, jitter=True)
    names = [f"o{i}" for i in range(20)]
    await known_and_reconciled(queue, calls, *names)  # all at once: the operator just started
    await asyncio.sleep(0.3)  # resyncs come between half an interval and one interval later
    early = len(calls)
    await until(lambda: set(calls) == set(names), seconds=1.0)
    await queue.stop()
    assert 0 < early < 20


async def test_a_woken_reconcile_goes_before_queued_periodic_resyncs():
    release = threading.Event()
    order: list[str] = []

    def reconcile(ns, n):
        order.append(n)
        if n == "busy":
            release.wait(2)
        return STEADY

    with ThreadPoolExecutor(max_workers=1) as pool:
        queue = WorkQueue(reconcile, interval=0.01, executor=pool, workers=1, coalesce=0)
        queue.ensure("shop", "busy")  # holds the only worker
        await until(lambda: order == ["busy"])
        for i in range(5):
            queue.ensure("shop", f"idle{i}")
        queue.ensure("shop", "dress")
        await asyncio.sleep(0.05)  # their periodic resyncs are queued behind "busy" now
        queue.poke("shop", "dress")
        release.set()
        await until(lambda: len(order) >= 3)
        await queue.stop()
    assert order[1] == "dress"


# ----------------------------------------------------------------- one error policy


async def test_every_failed_reconcile_is_counted_by_kind():
    counted: list[tuple[str, str, str]] = []
    results = iter([KubeConflictError("changed", status=409), InvalidSpecError("bad"), None])

    def reconcile(ns, n):
        outcome = next(results)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    queue = WorkQueue(reconcile, interval=0.05, count_error=lambda *k: counted.append(k))
    queue.ensure("shop", "dress")
    await until(lambda: queue.known == [])
    assert counted == [
        ("shop", "dress", "KubeConflictError"),
        ("shop", "dress", "InvalidSpecError"),
    ]


@pytest.mark.parametrize(("error", "delay"), [
    (KubeConflictError("changed", status=409), 1.0),
    (InvalidSpecError("bad"), 30.0),
    (KubeError("apiserver down"), 1.0),
    (RuntimeError("a bug"), 30.0),
])
def test_retry_delay_follows_one_policy(error, delay):
    queue = WorkQueue(lambda ns, n: STEADY, interval=30.0)
    assert queue.retry_delay(error, failures=1) == delay
