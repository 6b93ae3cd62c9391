"""The per-object resync loop that replaces kopf timers (which would add a finalizer)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tryon_operator.errors import KubeError
from tryon_operator.models import TryOnModelStatus
from tryon_operator.reconcile import ReconcileResult
from tryon_operator.resync import Resyncer

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

STEADY = ReconcileResult(TryOnModelStatus(), "Steady", None, False)


def recording(**options) -> tuple[Resyncer, list[str]]:
    """A Resyncer whose reconcile only records the names it was called for."""
    calls: list[str] = []
    return Resyncer(lambda ns, n: calls.append(n) or STEADY, **options), calls


async def until(check, seconds=3.0):
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling a plain predicate, bounded by timeout
            await asyncio.sleep(0.01)


async def test_each_known_object_is_reconciled_again_and_again():
    calls: list[tuple[str, str]] = []
    resyncer = Resyncer(lambda ns, n: calls.append((ns, n)) or STEADY, interval=0.02)
    resyncer.ensure("shop", "dress")
    await until(lambda: len(calls) >= 3)
    await resyncer.stop()
    assert set(calls) == {("shop", "dress")}


async def test_a_gone_object_ends_its_loop():
    resyncer = Resyncer(lambda ns, n: None, interval=0.01)
    resyncer.ensure("shop", "dress")
    await until(lambda: resyncer.known == [])


async def test_forget_stops_reconciling():
    resyncer, calls = recording(interval=0.01)
    resyncer.ensure("shop", "dress")
    await until(lambda: calls)
    resyncer.forget("shop", "dress")
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

    resyncer = Resyncer(flaky, interval=0.01)
    resyncer.ensure("shop", "dress")
    await until(lambda: len(calls) >= 2)
    await resyncer.stop()


# ----------------------------------------------------------------- wake-ups (poke)


async def test_a_poke_reconciles_at_once_despite_a_long_interval():
    resyncer, calls = recording(interval=60, coalesce=0.01)
    resyncer.ensure("shop", "dress")
    await asyncio.sleep(0.05)
    assert calls == []

    assert resyncer.poke("shop", "dress") is True
    await until(lambda: calls == ["dress"], seconds=1.0)
    await resyncer.stop()


async def test_a_burst_of_pokes_costs_one_reconcile():
    resyncer, calls = recording(interval=60, coalesce=0.1)
    resyncer.ensure("shop", "dress")
    await asyncio.sleep(0)
    for _ in range(5):  # two pods Ready, then the Deployment's status, ...
        resyncer.poke("shop", "dress")
        await asyncio.sleep(0.01)
    await until(lambda: calls)
    await asyncio.sleep(0.2)
    await resyncer.stop()
    assert calls == ["dress"]


async def test_a_poke_during_a_reconcile_brings_exactly_one_more():
    release = threading.Event()
    calls: list[str] = []

    def slow(ns, n):
        calls.append(n)
        if len(calls) == 1:
            release.wait(2)
        return STEADY

    resyncer = Resyncer(slow, interval=60, coalesce=0.01)
    resyncer.ensure("shop", "dress")
    resyncer.poke("shop", "dress")
    await until(lambda: calls)
    resyncer.poke("shop", "dress")  # the pod turned Ready while the first reconcile read
    resyncer.poke("shop", "dress")
    release.set()
    await until(lambda: len(calls) == 2)
    await asyncio.sleep(0.1)
    await resyncer.stop()
    assert len(calls) == 2


async def test_a_poke_wakes_only_its_own_object():
    resyncer, calls = recording(interval=60, coalesce=0.01)
    resyncer.ensure("shop", "dress")
    resyncer.ensure("shop", "shirt")
    resyncer.poke("shop", "shirt")
    await until(lambda: calls)
    await asyncio.sleep(0.05)
    await resyncer.stop()
    assert calls == ["shirt"]


async def test_poking_an_unknown_or_forgotten_object_is_a_no_op():
    resyncer = Resyncer(lambda ns, n: STEADY, interval=60)
    assert resyncer.poke("shop", "ghost") is False
    resyncer.ensure("shop", "dress")
    resyncer.forget("shop", "dress")
    assert resyncer.poke("shop", "dress") is False
    assert resyncer.pokes == 0


async def test_reconciles_run_on_the_given_executor():
    threads: list[str] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile") as pool:
        resyncer = Resyncer(lambda ns, n: threads.append(threading.current_thread().name)
                            or STEADY, interval=0.01, executor=pool)
        resyncer.ensure("shop", "dress")
        await until(lambda: threads)
        await resyncer.stop()
    assert threads[0].startswith("reconcile")


async def test_jitter_spreads_the_first_resync_within_one_interval():
    resyncer, calls = recording(interval=0.2, jitter=True)
    for i in range(20):
        resyncer.ensure("shop", f"o{i}")
    await asyncio.sleep(0.1)
    first_half = len(calls)
    await until(lambda: len(set(calls)) == 20, seconds=1.0)
    await resyncer.stop()
    assert 0 < first_half < 20


async def test_a_woken_reconcile_goes_before_queued_periodic_resyncs():
    release = threading.Event()
    order: list[str] = []

    def reconcile(ns, n):
        order.append(n)
        if n == "busy":
            release.wait(2)
        return STEADY

    with ThreadPoolExecutor(max_workers=1) as pool:
        resyncer = Resyncer(reconcile, interval=0.01, executor=pool, workers=1, coalesce=0)
        resyncer.ensure("shop", "busy")  # holds the only worker
        await until(lambda: order == ["busy"])
        for i in range(5):
            resyncer.ensure("shop", f"idle{i}")
        resyncer.ensure("shop", "dress")
        await asyncio.sleep(0.05)  # their periodic resyncs are queued behind "busy" now
        resyncer.poke("shop", "dress")
        release.set()
        await until(lambda: len(order) >= 3)
        await resyncer.stop()
    assert order[1] == "dress"
