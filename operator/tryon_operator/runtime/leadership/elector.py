"""Lease leader election, so two or more operator replicas run with exactly one writer.

``LeaderElector`` campaigns for the ``coordination.k8s.io/v1`` Lease ``tryon-operator`` as
client-go's leaderelection does: it takes the Lease when free or expired (judged on its own
monotonic clock from when it last saw the record change, never across hosts), renews it every
retry period with the resourceVersion it read (409: another replica wrote first), and stops
leading when no renewal succeeded within the renew deadline, which is shorter than the lease.
A graceful ``stop()`` releases the Lease (no holder, 1 s) so a standby takes over at once.

It runs on a **thread**: the Kubernetes client blocks, and a renewal must not wait behind kopf's
event loop. Its Lease client has no urllib3 retries and a pool of its own (``lease_api_client``):
a hidden retry would outlast the renew deadline. ``still_leader()`` is the fence (false once the
renew deadline passed without a renewal, whatever the loop is doing: SIGSTOP, a hung socket);
``write_batch()`` wraps writes, raising ``NotLeaderError`` when not leading, and stepping down
waits for the batches in flight before the Lease is released. Callbacks run in order on a thread
of their own (``callbacks.py``) and must not raise. docs/operator.md#high-availability
has the whole story and the measured failover.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from kubernetes import client

from ...api.errors import KubeConflictError, KubeError, NotLeaderError
from ...metrics import Metrics
from ...settings import OperatorSettings
from .callbacks import CallbackThread, LeadershipCallbacks
from .lease import (
    ElectionConfig,
    LeaseClient,
    LeaseRecord,
    free_for,
    held_spec,
    holder_annotation,
    lease_api_client,
    lease_expired,
    micro_time,
    next_attempt_in,
    released_spec,
    watched_expiry,
)

__all__ = ["LeaderElector", "LeadershipCallbacks"]

log = logging.getLogger(__name__)

Attempt = Literal["ok", "failed", "held"]


class LeaderElector:
    """Campaigns for one Lease on a thread; see the module docstring for the guarantees."""

    def __init__(
        self,
        api_client: client.ApiClient,
        config: ElectionConfig,
        callbacks: LeadershipCallbacks | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.identity = config.identity
        self.namespace = config.namespace
        self.name = config.name
        self.lease_seconds = math.ceil(config.lease_seconds)
        self.renew_deadline = float(config.renew_deadline_seconds)
        self.retry_period = float(config.retry_period_seconds)
        self._client = LeaseClient(api_client, config.namespace, config.name)
        self._callbacks_given = callbacks or LeadershipCallbacks()
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Condition()
        self._leading = False
        self._renewed_at = -math.inf  # monotonic start of the last successful acquire/renew
        self._in_flight = 0  # write batches under way (write_batch)
        self._lease: dict[str, Any] | None = None  # last Lease read or written
        self._record: LeaseRecord | None = None
        self._observed_at = -math.inf  # when this process last saw the record change
        self._leader_event = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._callbacks = CallbackThread()
        if metrics is not None:
            metrics.leader.set(0)

    @classmethod
    def from_settings(
        cls,
        settings: OperatorSettings,
        api_client: client.ApiClient,
        callbacks: LeadershipCallbacks | None = None,
        metrics: Metrics | None = None,
        holder_annotations: Mapping[str, str | None] | None = None,
    ) -> LeaderElector:
        """The elector the settings describe, on a client of its own made from ``api_client``
        (``lease_api_client``: no hidden retries, its own connections)."""
        config = ElectionConfig.from_settings(settings, holder_annotations)
        return cls(lease_api_client(api_client), config, callbacks, metrics)

    # ------------------------------------------------------------------ what others ask

    @property
    def is_leader(self) -> bool:
        """This replica's view: it won the Lease and has not stepped down since."""
        with self._lock:
            return self._leading

    @property
    def leader(self) -> str | None:
        """The holder in the last record this replica saw (None: nobody)."""
        with self._lock:
            return self._record.holder if self._record else None

    def leader_annotation(self, key: str) -> str | None:
        """The leader's annotation ``key`` in the last Lease seen (None: unknown, or us)."""
        with self._lock:
            lease = self._lease
        return None if lease is None else holder_annotation(lease, self.identity, key)

    def read_leader_annotation(self, key: str) -> str | None:
        """The same from the Lease read now (``KubeError`` when it cannot be): the view above can
        be a retry period old. The campaign's record is left alone; only its thread moves it."""
        lease = self._client.get(timeout=self.retry_period)
        return None if lease is None else holder_annotation(lease, self.identity, key)

    def still_leader(self) -> bool:
        """The fence: leading *and* the last successful renewal started under the renew
        deadline ago. Call it right before each write batch (or use ``write_batch``)."""
        with self._lock:
            return self._fresh()

    def _fresh(self) -> bool:
        return self._leading and self._clock() - self._renewed_at < self.renew_deadline

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """``with elector.write_batch(): ...writes...`` — raises ``NotLeaderError`` up front when
        not leading; stepping down waits for the batches inside before releasing the Lease."""
        with self._lock:
            if not self._fresh():
                raise NotLeaderError(f"{self.identity} does not hold Lease {self.name}")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        """Blocks until this replica leads (True) or ``timeout`` passes (False)."""
        return self._leader_event.wait(timeout)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LeaderElector:
        """Runs ``run()`` on a daemon thread named ``leader-election``."""
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self

    def run(self) -> None:
        """Campaigns, then renews, until ``stop()``; blocks the calling thread.

        Losing the Lease (renew deadline passed, or another holder seen) calls
        ``on_stopped_leading`` and campaigns again; the wiring may exit instead.
        """
        self._callbacks.start()
        log.info(
            "leader election: %s campaigns for Lease %s/%s (lease %ss, renew deadline %ss, "
            "retry %ss)",
            self.identity,
            self.namespace,
            self.name,
            self.lease_seconds,
            self.renew_deadline,
            self.retry_period,
        )
        try:
            while not self._stopping.is_set():
                began = self._clock()
                if self.is_leader:
                    self._renew(began)
                else:
                    self._campaign(began)
                self._stopping.wait(self._pause(began))
        finally:
            self._step_down("shutting down", release=True)
            self._callbacks.finish()

    def stop(self, timeout: float | None = None) -> None:
        """Stops campaigning; a leader steps down (waiting for write batches and
        ``on_stopped_leading``) and releases the Lease. Joins the thread ``start()`` made."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else self.lease_seconds + 5)
        self._callbacks.join(timeout if timeout is not None else self.renew_deadline)

    # ------------------------------------------------------------------ the loop

    def _pause(self, began: float) -> float:
        """Until the next attempt (``next_attempt_in``: the rule, pure)."""
        now = self._clock()
        with self._lock:
            if self._leading:
                fence = self._renewed_at + self.renew_deadline
                return next_attempt_in(now, began, self.retry_period, fence=fence)
            record, observed_at = self._record, self._observed_at
        expires_at = watched_expiry(record, self.identity, observed_at, self.lease_seconds)
        jitter = random.uniform(0, 0.1 * self.retry_period)
        return next_attempt_in(now, began, self.retry_period, expires_at=expires_at, jitter=jitter)

    def _campaign(self, began: float) -> None:
        if self._attempt(began, began + self.renew_deadline) == "ok":
            self._become_leader(began)

    def _renew(self, began: float) -> None:
        with self._lock:
            fence = self._renewed_at + self.renew_deadline
        if began >= fence:
            self._step_down(f"no successful renewal within {self.renew_deadline:g}s")
            return
        result = self._attempt(began, fence)
        if result == "ok":
            with self._lock:
                self._renewed_at = began
        elif result == "held":
            self._step_down(f"the Lease is held by {self.leader}")
        elif self._clock() >= fence:
            self._step_down(f"no successful renewal within {self.renew_deadline:g}s")

    def _attempt(self, began: float, deadline: float) -> Attempt:
        """One get-then-write of the Lease, every call bounded by ``deadline`` (monotonic)."""

        def left() -> float:
            return deadline - self._clock()

        try:
            lease = self._client.get(timeout=max(0.05, left()))
            marks = self.config.lease_annotations
            if lease is None:
                spec = held_spec(None, self.identity, self.lease_seconds, micro_time())
                created = self._client.create(spec, max(0.05, left()), marks)
                self._observe(created)
                return "ok"
            self._observe(lease)
            record = LeaseRecord.from_lease(lease)
            with self._lock:
                expired = lease_expired(
                    record, self._observed_at, self._clock(), self.lease_seconds
                )
            if not free_for(record, self.identity, expired):
                return "held"
            if left() <= 0:
                return "failed"
            spec = held_spec(record, self.identity, self.lease_seconds, micro_time())
            updated = self._client.update(lease, spec, max(0.05, left()), marks)
            self._observe(updated)
            return "ok"
        except KubeConflictError:
            log.debug("leader election: Lease %s changed under %s", self.name, self.identity)
            return "failed"
        except KubeError as err:
            log.warning(
                "leader election: %s could not reach Lease %s/%s: %s",
                self.identity,
                self.namespace,
                self.name,
                err,
            )
            return "failed"
        except Exception:  # a surprise must not end the campaign; the fence still holds
            log.exception(
                "leader election: unexpected error on Lease %s/%s", self.namespace, self.name
            )
            return "failed"

    def _observe(self, lease: dict[str, Any]) -> None:
        record = LeaseRecord.from_lease(lease)
        with self._lock:
            self._lease = lease
            if record.same_spec(self._record):
                return
            previous = self._record.holder if self._record else None
            self._record = record
            self._observed_at = self._clock()
        if record.holder != previous:
            log.info(
                "leader election: Lease %s/%s holder is now %s (seen by %s)",
                self.namespace,
                self.name,
                record.holder or "nobody",
                self.identity,
            )
            if self._callbacks_given.on_new_leader is not None:
                callback = self._callbacks_given.on_new_leader
                self._callbacks.dispatch(lambda: callback(record.holder))

    # ------------------------------------------------------------------ transitions

    def _become_leader(self, began: float) -> None:
        with self._lock:
            self._leading = True
            self._renewed_at = began
            transitions = self._record.transitions if self._record else 0
            self._leader_event.set()
        if self._metrics is not None:
            self._metrics.leader.set(1)
            self._metrics.leader_transitions.labels("started").inc()
        message = f"{self.identity} became leader (leaseTransitions={transitions})"
        log.info("leader election: %s of Lease %s/%s", message, self.namespace, self.name)
        self._callbacks.dispatch(lambda: self._event("LeaderElection", message))
        if self._callbacks_given.on_started_leading is not None:
            self._callbacks.dispatch(self._callbacks_given.on_started_leading)

    def _step_down(self, reason: str, *, release: bool = False) -> None:
        with self._lock:
            if not self._leading:
                return
            self._leading = False
            self._leader_event.clear()
            fence = self._renewed_at + self.renew_deadline
            # write batches under way finish (or the fence passes) before anything else
            drained = self._lock.wait_for(
                lambda: self._in_flight == 0, timeout=max(0.0, fence - self._clock())
            )
        if self._metrics is not None:
            self._metrics.leader.set(0)
            self._metrics.leader_transitions.labels("stopped").inc()
        log.log(
            logging.INFO if release else logging.WARNING,
            "leader election: %s stopped leading Lease %s/%s: %s",
            self.identity,
            self.namespace,
            self.name,
            reason,
        )
        stopped = self._callbacks_given.on_stopped_leading
        done = self._callbacks.dispatch(stopped) if stopped is not None else None
        if not release:
            return
        if done is not None:
            drained = done.wait(max(0.0, fence - self._clock())) and drained
        if not drained:
            log.warning(
                "leader election: writes still under way; Lease %s left to expire", self.name
            )
            return
        self._release()

    def _release(self) -> None:
        with self._lock:
            lease, record = self._lease, self._record
        if lease is None or record is None or record.holder != self.identity:
            return
        self._event("LeaderElection", f"{self.identity} released the Lease")
        try:
            released = self._client.update(
                lease,
                released_spec(record, micro_time()),
                self.retry_period,
                self.config.released_annotations,
            )
        except KubeError as err:
            log.warning("leader election: could not release Lease %s: %s", self.name, err)
            return
        self._observe(released)
        log.info(
            "leader election: %s released Lease %s/%s", self.identity, self.namespace, self.name
        )

    def _event(self, reason: str, message: str) -> None:
        with self._lock:
            lease = self._lease
        if not self.config.record_events or lease is None:
            return
        try:
            self._client.event(lease, reason, message, timeout=self.retry_period)
        except KubeError as err:  # best effort: the log line above is the record
            log.debug("leader election: no Event (%s)", err)
