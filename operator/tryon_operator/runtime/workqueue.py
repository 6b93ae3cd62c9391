"""The one work queue: the only thing in the operator that runs a reconcile.

Everything that wants a TryOnModel looked at feeds it: kopf's watch events on TryOnModels
(``ensure`` / ``poke`` / ``forget``), the child informers (a pod turned Ready, a hand edit; see
``wakeups.py``), the registry poller and the webhook (``poke``), and the periodic resync. Like
controller-runtime's workqueue it guarantees one reconcile in flight per object, has one error
policy (below) and honours a reconcile's ``requeue_seconds`` (``RequeueAfter``).

Each known object has one asyncio task that sleeps ``interval`` seconds between reconciles (less
while a rollout asks to be looked at sooner); ``poke`` cuts the sleep short. No kopf timer or
daemon is used: those put a finalizer on every object, which blocks deletion while the operator
is down.

Error policy, the same for every path: an invalid spec is not retried (it is in status; a spec
edit brings a watch event), a write conflict is retried after 1 s, other API and registry errors
back off from 1 s doubling up to the interval, a bug is logged and retried after the interval.
Each failure counts in ``tryon_reconcile_errors_total{kind}``. Under leader election the workers
wait while ``active`` is clear (a standby), and a reconcile cut short because this replica lost
the Lease (``NotLeaderError``) is no error: the new leader reconciles every object afresh.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

from ..api.errors import InvalidSpecError, KubeConflictError, NotLeaderError, TryOnError
from ..reconcile import ReconcileResult

log = logging.getLogger(__name__)

ReconcileFn = Callable[[str, str], ReconcileResult | None]
ErrorCounter = Callable[[str, str, str], None]  # namespace, name, error kind
Key = tuple[str, str]
Job = tuple[Key, "asyncio.Future[ReconcileResult | None]"]
CONFLICT_RETRY_SECONDS = 1.0


class WorkQueue:
    """One reconcile loop per TryOnModel.

    ``coalesce`` is how long a woken loop waits for more pokes before it reconciles, so a burst of
    child events (two pods turning Ready together) costs one reconcile.
    ``executor`` runs the blocking reconciles (default: asyncio's shared one), ``workers`` at a
    time. Woken reconciles (a poke, a rollout's requeue) go before periodic resyncs: at 1,000
    objects the resyncs alone can fill the workers, and a pod turning Ready must not queue behind
    them.
    """

    def __init__(  # noqa: PLR0913 - keyword-only options
        self,
        reconcile: ReconcileFn,
        interval: float,
        *,
        coalesce: float = 0.01,
        executor: Executor | None = None,
        workers: int = 8,
        jitter: bool = False,
        count_error: ErrorCounter | None = None,
    ) -> None:
        self._reconcile = reconcile
        self._count_error = count_error or (lambda _ns, _name, _kind: None)
        # Cleared while this replica may not reconcile (a standby under leader election).
        self.active = asyncio.Event()
        self.active.set()
        self._interval = interval
        self._coalesce = coalesce
        self._executor = executor
        self._jitter = jitter
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._wakeups: dict[Key, asyncio.Event] = {}
        self._urgent: deque[Job] = deque()
        self._background: deque[Job] = deque()
        self._queued = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._worker_count = workers
        self.pokes = 0  # pokes that reached a known object (for tests and metrics)

    @property
    def known(self) -> list[Key]:
        return sorted(self._tasks)

    def ensure(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        task = self._tasks.get(key)
        if not self._workers:
            self._workers = [asyncio.create_task(self._worker()) for _ in range(self._worker_count)]
        if task is None or task.done():
            wakeup = self._wakeups.setdefault(key, asyncio.Event())
            self._tasks[key] = asyncio.create_task(self._loop(namespace, name, wakeup))

    def poke(self, namespace: str, name: str) -> bool:
        """Wakes the object's loop now (or right after the reconcile in flight); False if unknown.

        Pokes for objects without a loop are dropped: the TryOnModel's own watch event creates the
        loop, which reconciles it at once.
        """
        wakeup = self._wakeups.get((namespace, name))
        if wakeup is None:
            return False
        self.pokes += 1
        log.debug("poke %s/%s at %.3f", namespace, name, time.monotonic())
        wakeup.set()
        for job in self._background:  # already waiting for a worker: move it to the front
            if job[0] == (namespace, name):
                self._background.remove(job)
                self._urgent.append(job)
                break
        return True

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._wakeups.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values()) + self._workers
        self._tasks.clear()
        self._wakeups.clear()
        self._workers = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _sleep(self, wakeup: asyncio.Event, delay: float) -> bool:
        """Sleeps ``delay`` seconds or until poked (then True); a poke waits ``coalesce`` for its
        siblings."""
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
        return poked

    async def _run(self, key: Key, urgent: bool) -> ReconcileResult | None:
        future: asyncio.Future[ReconcileResult | None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._background).append((key, future))
        self._queued.set()
        return await future

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._urgent and not self._background:
                self._queued.clear()
                await self._queued.wait()
                continue
            await self.active.wait()
            if not self._urgent and not self._background:
                continue
            key, future = (self._urgent or self._background).popleft()
            if future.done():  # its loop was cancelled (object forgotten, operator stopping)
                continue
            try:
                result = await loop.run_in_executor(self._executor, self._reconcile, *key)
            except Exception as err:  # handed to the loop, which decides about retries
                if not future.done():
                    future.set_exception(err)
            else:
                if not future.done():
                    future.set_result(result)

    def retry_delay(self, err: Exception, failures: int) -> float:
        if isinstance(err, InvalidSpecError):
            return self._interval  # in status already; a spec edit pokes
        if isinstance(err, KubeConflictError):
            return CONFLICT_RETRY_SECONDS
        if isinstance(err, TryOnError):
            return min(self._interval, 0.5 * 2.0 ** min(failures, 6))
        return self._interval

    async def _loop(self, namespace: str, name: str, wakeup: asyncio.Event) -> None:
        key = (namespace, name)
        # A new loop reconciles at once (an object just created, or the operator just started);
        # ``jitter`` spreads the first *resyncs* of objects seen together.
        delay = 0.0
        failures = 0
        requeued = False
        first = True
        while True:
            poked = await self._sleep(wakeup, delay)
            delay = self._interval
            started = time.monotonic()
            try:
                result = await self._run(key, urgent=poked or requeued)
            except NotLeaderError:
                continue  # lost the Lease mid-reconcile: the new leader takes over, no error
            except Exception as err:
                failures += 1
                delay = self.retry_delay(err, failures)
                self._count_error(namespace, name, type(err).__name__)
                if isinstance(err, TryOnError):
                    log.warning(
                        "reconcile of %s/%s failed (%s; next look in %.1fs): %s",
                        namespace,
                        name,
                        type(err).__name__,
                        delay,
                        err,
                    )
                else:  # a bug must not end self-heal for this object
                    log.exception("reconcile of %s/%s crashed", namespace, name)
                continue
            failures = 0
            requeued = False
            if first and self._jitter:
                delay = self._interval * (0.5 + random.random() / 2)
            first = False
            log.debug(
                "reconcile %s/%s %.3f-%.3f: %s",
                namespace,
                name,
                started,
                time.monotonic(),
                result.action if result else "gone",
            )
            if result is None:  # the object is gone
                self._tasks.pop(key, None)
                self._wakeups.pop(key, None)
                return
            if result.requeue_seconds is not None:
                delay = min(self._interval, max(result.requeue_seconds, 0.1))
                requeued = True
