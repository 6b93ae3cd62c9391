"""Periodic reconcile per TryOnModel without a finalizer, woken early by changes to its children.

kopf timers and daemons put a finalizer on every object, which blocks deletion whenever the operator
is down. This loop runs beside kopf instead: one asyncio task per known object, fed by kopf's watch
events (which need no finalizer), sleeping ``interval`` seconds between reconciles (less while a
rollout asks to be looked at sooner). ``poke`` cuts the sleep short when a child changed (a pod
turned Ready, a Deployment's status moved), so progress follows the cluster instead of the clock
and the interval is only a safety net.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor

from .errors import InvalidSpecError, TryOnError
from .reconcile import ReconcileResult

log = logging.getLogger(__name__)

ReconcileFn = Callable[[str, str], ReconcileResult | None]
Key = tuple[str, str]


class Resyncer:
    """One reconcile loop per TryOnModel.

    ``coalesce`` is how long a woken loop waits for more pokes before it reconciles, so a burst of
    pod and Deployment events (two pods Ready, then the Deployment status) costs one reconcile.
    ``executor`` runs the blocking reconciles (default: asyncio's shared one, ``cpus + 4`` threads).
    """

    def __init__(
        self,
        reconcile: ReconcileFn,
        interval: float,
        *,
        coalesce: float = 0.05,
        executor: Executor | None = None,
        jitter: bool = False,
    ) -> None:
        self._reconcile = reconcile
        self._interval = interval
        self._coalesce = coalesce
        self._executor = executor
        self._jitter = jitter
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._wakeups: dict[Key, asyncio.Event] = {}
        self.pokes = 0  # pokes that reached a known object (for tests and metrics)

    @property
    def known(self) -> list[Key]:
        return sorted(self._tasks)

    def ensure(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.get(key)
        if task is None or task.done():
            wakeup = self._wakeups.setdefault(key, asyncio.Event())
            self._tasks[key] = asyncio.create_task(self._loop(namespace, name, wakeup))

    def poke(self, namespace: str, name: str) -> bool:
        """Wakes the object's loop now (or right after the reconcile in flight); False if unknown.

        Pokes for objects without a loop are dropped: the TryOnModel's own watch event creates the
        loop, and kopf's create/resume handlers reconcile it then anyway.
        """
        wakeup = self._wakeups.get((namespace, name))
        if wakeup is None:
            return False
        self.pokes += 1
        log.debug("poke %s/%s at %.3f", namespace, name, time.monotonic())
        wakeup.set()
        return True

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._wakeups.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        self._wakeups.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sleep(self, wakeup: asyncio.Event, delay: float) -> None:
        """Sleeps ``delay`` seconds or until poked; a poke waits ``coalesce`` for its siblings."""
        poked = wakeup.is_set()
        if not poked:
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=delay)
                poked = True
            except TimeoutError:
                pass
        if poked:
            await asyncio.sleep(self._coalesce)
        # Cleared before the reconcile reads the cluster: a poke during it means "look again".
        wakeup.clear()

    async def _loop(self, namespace: str, name: str, wakeup: asyncio.Event) -> None:
        key = (namespace, name)
        # Spread the first resync of objects seen together (operator start: all of them at once).
        delay = self._interval * random.random() if self._jitter else self._interval
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            await self._sleep(wakeup, delay)
            delay = self._interval
            started = time.monotonic()
            try:
                result = await loop.run_in_executor(self._executor, self._reconcile, namespace,
                                                    name)
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
            log.debug("reconcile %s/%s %.3f-%.3f: %s", namespace, name, started,
                      time.monotonic(), result.action if result else "gone")
            if result is None:  # the object is gone
                self._tasks.pop(key, None)
                self._wakeups.pop(key, None)
                return
            if result.requeue_seconds is not None:
                delay = min(self._interval, max(result.requeue_seconds, 0.1))
