"""Deliver notifications without ever holding up a rollout.

``submit()`` is safe from any thread and never blocks: it drops duplicates, then puts the message
on each target's bounded queue (dropping and counting when full). One asyncio worker per target
sends with a short timeout, retries transient failures with exponential backoff and jitter (or
the receiver's ``Retry-After``), and stops hammering a dead receiver with a circuit breaker:
after ``breaker_threshold`` failed attempts in a row the target is left alone for a cooldown
that doubles on every failed probe. One worker per target means one request in flight per
target, so a broken webhook can neither starve the other targets nor cause a retry storm.

Webhook URLs are secrets (the path is the credential): they are never logged, and a target's
``repr`` shows only its name and kind.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from .delivery import Breaker, DeliveryPolicy, HideSecrets, NotifyMetrics, Target
from .delivery import parse_retry_after as parse_retry_after
from .message import Notification

log = logging.getLogger(__name__)

FailureCallback = Callable[[Notification, str, str], None]
DoneCallback = Callable[[], None]


@dataclass
class _Item:
    notification: Notification
    queued_at: float
    on_done: DoneCallback | None = None
    targets_left: int = 0  # targets not yet done with it (sent, given up, expired or dropped)


@dataclass
class _TargetState:
    target: Target
    queue: asyncio.Queue[_Item]
    breaker: Breaker
    task: asyncio.Task[None] | None = None
    overflowing: bool = False


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    retryable: bool
    result: str
    retry_after: float | None = None


class Dispatcher:
    """Bounded, deduplicating, retrying, circuit-breaking fan-out to webhook targets."""

    def __init__(
        self,
        targets: Sequence[Target],
        policy: DeliveryPolicy | None = None,
        *,
        metrics: NotifyMetrics | None = None,
        on_failure: FailureCallback | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError("notification target names must be unique")
        self.targets = tuple(targets)
        self.policy = policy or DeliveryPolicy()
        self.metrics = metrics or NotifyMetrics()
        self._on_failure = on_failure
        self._rng = rng or random.Random()
        self._monotonic = monotonic
        self._states: dict[str, _TargetState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._recent: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        self._filter = HideSecrets(t.url for t in self.targets)
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            timeout=self.policy.timeout_seconds, follow_redirects=False, trust_env=False
        )
        logging.getLogger("httpx").addFilter(self._filter)
        for target in self.targets:
            state = _TargetState(
                target,
                asyncio.Queue(maxsize=self.policy.queue_size),
                Breaker(
                    self.policy.breaker_threshold,
                    self.policy.breaker_cooldown_seconds,
                    self.policy.breaker_cooldown_max_seconds,
                ),
            )
            state.task = asyncio.create_task(
                self._worker(state), name=f"tryon-notify-{target.name}"
            )
            self._states[target.name] = state
            self.metrics.circuit_open.labels(target.name).set(0)

    async def join(self, wait_seconds: float) -> bool:
        """Waits until every queued message is sent or given up; False on timeout."""
        try:
            async with asyncio.timeout(wait_seconds):
                for state in self._states.values():
                    await state.queue.join()
        except TimeoutError:
            return False
        return True

    async def stop(self, drain_seconds: float = 2.0) -> None:
        """Gives queued messages ``drain_seconds`` to go out, then drops the rest."""
        if self._loop is None:
            return
        if drain_seconds > 0:
            await self.join(drain_seconds)
        self._stopping = True
        for state in self._states.values():
            if state.task is not None:
                state.task.cancel()
        await asyncio.gather(
            *(s.task for s in self._states.values() if s.task is not None),
            return_exceptions=True,
        )
        for state in self._states.values():
            while not state.queue.empty():
                state.queue.get_nowait()
                state.queue.task_done()
                self.metrics.dropped.labels(state.target.name, "shutdown").inc()
        if self._client is not None:
            await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._filter)
        self._loop = None

    # ------------------------------------------------------------------ submit

    def submit(self, n: Notification, on_done: DoneCallback | None = None) -> None:
        """Queues ``n`` for its targets. Thread-safe, never blocks, never raises. ``on_done``
        runs on a worker thread once every target is done with it (sent, given up or dropped),
        never when the operator stops first: it records that nobody needs to send it again."""
        try:
            self._submit(n, on_done)
        except Exception:  # a notification must never break the caller
            log.exception("could not queue a %s notification", n.kind)

    def _submit(self, n: Notification, on_done: DoneCallback | None) -> None:
        wanted = [t for t in self.targets if n.targets is None or t.name in n.targets]
        if not wanted:
            return
        if self._is_duplicate(n):
            self.metrics.deduplicated.inc()
            log.debug("notification %s for %s deduplicated", n.kind, n.object_ref)
            return
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping:
            for t in wanted:
                self.metrics.dropped.labels(t.name, "not_running").inc()
            return
        names = [t.name for t in wanted]
        item = _Item(n, self._monotonic(), on_done, len(names))
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(names, item)
        else:
            loop.call_soon_threadsafe(self._enqueue, names, item)

    def _is_duplicate(self, n: Notification) -> bool:
        window = self.policy.dedup_seconds
        if window <= 0:
            return False
        now = self._monotonic()
        key = n.dedup_key()
        with self._lock:
            last = self._recent.get(key)
            if last is not None and now - last < window:
                return True
            self._recent[key] = now
            if len(self._recent) > 1024:  # keep the memory bounded
                self._recent = {k: v for k, v in self._recent.items() if now - v < window}
        return False

    def _enqueue(self, names: Sequence[str], item: _Item) -> None:
        for name in names:
            state = self._states.get(name)
            if state is None:
                continue
            try:
                state.queue.put_nowait(item)
            except asyncio.QueueFull:
                self.metrics.dropped.labels(name, "queue_full").inc()
                self._target_done(item)
                if not state.overflowing:  # one warning per overflow, not one per message
                    state.overflowing = True
                    log.warning(
                        "notification queue for target %s is full (%d); dropping new messages "
                        "until it drains (see tryon_notifications_dropped_total)",
                        name,
                        state.queue.maxsize,
                    )
            else:
                if state.overflowing and state.queue.qsize() <= state.queue.maxsize // 2:
                    state.overflowing = False

    # ------------------------------------------------------------------ delivery

    async def _worker(self, state: _TargetState) -> None:
        while True:
            item = await state.queue.get()
            try:
                await self._deliver(state, item)
            except asyncio.CancelledError:  # stopped mid-delivery (or waiting out the breaker)
                self.metrics.dropped.labels(state.target.name, "shutdown").inc()
                raise
            except Exception:  # the worker must survive anything one message does
                log.exception("notification worker for target %s failed", state.target.name)
            finally:
                state.queue.task_done()
            self._target_done(item)

    def _target_done(self, item: _Item) -> None:
        """On the loop: the last target done with ``item`` hands its callback to a thread."""
        item.targets_left -= 1
        if item.targets_left == 0 and item.on_done is not None and self._loop is not None:
            self._loop.run_in_executor(None, _run_quietly, item.on_done)

    async def _deliver(self, state: _TargetState, item: _Item) -> None:
        target, n, policy = state.target, item.notification, self.policy
        attempt = 0
        body = target.body(n)
        while True:
            await self._wait_for_breaker(state)
            if self._monotonic() - item.queued_at > policy.max_age_seconds:
                self.metrics.dropped.labels(target.name, "expired").inc()
                log.warning(
                    "%s notification for %s expired unsent on target %s",
                    n.kind,
                    n.object_ref,
                    target.name,
                )
                return
            attempt += 1
            outcome = await self._attempt(target, n, body)
            self.metrics.attempts.labels(target.name, outcome.result).inc()
            if outcome.ok:
                state.breaker.success()
                self.metrics.circuit_open.labels(target.name).set(0)
                self.metrics.sent.labels(target.name).inc()
                log.info("%s notification for %s sent to %s", n.kind, n.object_ref, target.name)
                return
            if state.breaker.failure(self._monotonic()):
                self.metrics.circuit_open.labels(target.name).set(1)
                log.warning(
                    "target %s failed %d times in a row; circuit open for %.0fs",
                    target.name,
                    state.breaker.failures,
                    state.breaker.cooldown,
                )
            if not outcome.retryable or attempt >= policy.max_attempts:
                self._give_up(target, n, outcome.result, attempt)
                return
            delay = self._retry_delay(attempt, outcome.retry_after)
            log.info(
                "%s notification for %s to %s failed (%s, attempt %d/%d); retry in %.1fs",
                n.kind,
                n.object_ref,
                target.name,
                outcome.result,
                attempt,
                policy.max_attempts,
                delay,
            )
            await asyncio.sleep(delay)

    async def _wait_for_breaker(self, state: _TargetState) -> None:
        while True:
            wait = state.breaker.open_until - self._monotonic()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        policy = self.policy
        if retry_after is not None:
            return min(max(retry_after, 0.0), policy.retry_after_max_seconds)
        step = policy.backoff_base_seconds * 2.0 ** (attempt - 1)
        ceiling = min(policy.backoff_max_seconds, step)
        # "equal jitter": never less than half the step, so retries still spread out
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def _attempt(self, target: Target, n: Notification, body: bytes) -> _Outcome:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tryon-operator",
            "X-Tryon-Notification-Id": n.id,
            **dict(target.headers),
        }
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return _Outcome(False, True, "timeout")
        except httpx.HTTPError as err:  # the message may hold the URL: log only the type
            return _Outcome(False, True, type(err).__name__)
        status = response.status_code
        if 200 <= status < 300:
            return _Outcome(True, False, "ok")
        retryable = status in (408, 425, 429) or status >= 500
        return _Outcome(
            False,
            retryable,
            f"http_{status}",
            parse_retry_after(response.headers.get("Retry-After")) if retryable else None,
        )

    def _give_up(self, target: Target, n: Notification, reason: str, attempts: int) -> None:
        self.metrics.failed.labels(target.name, reason).inc()
        log.warning(
            "%s notification for %s not delivered to %s after %d attempt(s): %s",
            n.kind,
            n.object_ref,
            target.name,
            attempts,
            reason,
        )
        if self._on_failure is None or self._loop is None:
            return
        callback = self._on_failure
        # The callback may do blocking I/O (posting an Event): keep it off the event loop.
        future = self._loop.run_in_executor(None, callback, n, target.name, reason)
        future.add_done_callback(_log_callback_error)


def _run_quietly(callback: DoneCallback) -> None:
    try:
        callback()
    except Exception:  # a bookkeeping write must not kill the executor's thread
        log.exception("notification done-callback failed")


def _log_callback_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("notification failure callback raised %s", type(future.exception()).__name__)
