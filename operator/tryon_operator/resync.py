"""Periodic reconcile per TryOnModel without a finalizer.

kopf timers and daemons put a finalizer on every object, which blocks deletion whenever the operator
is down. This loop runs beside kopf instead: one asyncio task per known object, fed by kopf's watch
events (which need no finalizer), sleeping ``interval`` seconds between reconciles (less while a
rollout asks to be looked at sooner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .errors import InvalidSpecError, TryOnError
from .reconcile import ReconcileResult

log = logging.getLogger(__name__)

ReconcileFn = Callable[[str, str], ReconcileResult | None]


class Resyncer:
    def __init__(self, reconcile: ReconcileFn, interval: float) -> None:
        self._reconcile = reconcile
        self._interval = interval
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    @property
    def known(self) -> list[tuple[str, str]]:
        return sorted(self._tasks)

    def ensure(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._loop(namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        task = self._tasks.pop((namespace, name), None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self, namespace: str, name: str) -> None:
        delay = self._interval
        failures = 0
        while True:
            await asyncio.sleep(delay)
            delay = self._interval
            try:
                result = await asyncio.to_thread(self._reconcile, namespace, name)
            except InvalidSpecError:
                continue  # reported in status; a spec edit brings a watch event
            except TryOnError as err:
                failures += 1
                delay = min(self._interval, 0.5 * 2 ** min(failures, 6))
                log.warning("reconcile of %s/%s failed (retry in %.1fs): %s", namespace, name,
                            delay, err)
                continue
            except Exception:  # a bug must not end self-heal for this object
                failures += 1
                delay = self._interval
                log.exception("reconcile of %s/%s crashed", namespace, name)
                continue
            failures = 0
            if result is None:  # the object is gone
                self._tasks.pop((namespace, name), None)
                return
            if result.requeue_seconds is not None:
                delay = min(self._interval, max(result.requeue_seconds, 0.1))
