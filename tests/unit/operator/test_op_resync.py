"""The per-object resync loop that replaces kopf timers (which would add a finalizer)."""

from __future__ import annotations

import asyncio

import pytest
from tryon_operator.errors import KubeError
from tryon_operator.models import TryOnModelStatus
from tryon_operator.reconcile import ReconcileResult
from tryon_operator.resync import Resyncer

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

STEADY = ReconcileResult(TryOnModelStatus(), "Steady", None, False)


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
    calls: list[str] = []
    resyncer = Resyncer(lambda ns, n: calls.append(n) or STEADY, interval=0.01)
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
