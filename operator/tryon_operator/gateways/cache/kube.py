"""``KubePort`` on the watch cache: reads from the stores, writes through the live gateway.

Stale reads after the operator's own writes are the one danger of a cache (a reconcile that
scaled a Deployment must not see the old replica count a moment later and "heal" it back). Each
write remembers the resourceVersion the API server answered with (an *expectation*, as in
controller-runtime and Argo Rollouts); a read that touches an object with an unmet expectation
waits up to ``fresh_wait`` seconds for the watch to deliver it, then reads live instead.

resourceVersions are compared as integers. Kubernetes documents them as opaque, but every API
server backed by etcd issues them from one increasing revision; a version that is not an integer
only counts as caught up when it is equal, so the worst case is a live read, never a stale one.

The live reads that remain, each on purpose: the fallback above (``tryon_cache_fallbacks_total``),
GPU capacity (nodes and pods cluster-wide, only while a preview is short of GPUs, cached 2 s), and
the Deployment read in ``restore_template`` (its JSON patch tests the live resourceVersion).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ...api.builders import Owner
from ...observe.parse import cluster_view
from ...observe.views import ClusterView, GpuCapacity
from ..kube import KubeGateway
from .store import Store, version_of

log = logging.getLogger(__name__)

ExpectKey = tuple[str, str, str]  # kind, namespace, name
FRESH_WAIT_SECONDS = 1.0
EXPECTATION_TTL_SECONDS = 60.0  # after this the watch is trusted again (it relists on trouble)


def caught_up(seen: str | None, expected: str | None) -> bool:
    """Whether the cache's version ``seen`` is at least the ``expected`` one (None: deleted)."""
    if expected is None:
        return seen is None
    if seen is None:
        return False
    if seen == expected:
        return True
    try:
        return int(seen) >= int(expected)
    except ValueError:
        return False


class Stores:
    """The five stores, sharing one condition so a reader can wait on any change."""

    def __init__(self) -> None:
        self.changed = threading.Condition(threading.RLock())
        self.tryonmodels = Store("TryOnModel", self.changed)
        self.deployments = Store("Deployment", self.changed)
        self.services = Store("Service", self.changed)
        self.hpas = Store("HorizontalPodAutoscaler", self.changed)
        self.pods = Store("Pod", self.changed)

    def of(self, kind: str) -> Store:
        return {
            "TryOnModel": self.tryonmodels,
            "Deployment": self.deployments,
            "Service": self.services,
            "HorizontalPodAutoscaler": self.hpas,
            "Pod": self.pods,
        }[kind]

    def changed_wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Blocks until ``ready()`` holds (checked after each store change) or ``timeout``."""
        with self.changed:
            return self.changed.wait_for(ready, timeout)

    @property
    def children_synced(self) -> bool:
        return all(
            s.synced.is_set() for s in (self.deployments, self.services, self.hpas, self.pods)
        )


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.fallbacks = Counter(
            "tryon_cache_fallbacks_total",
            "Reads that went to the API server because the watch cache had not caught up",
            ["kind", "reason"],
            registry=registry,
        )


class CachedKube:
    """What the Reconciler uses in the operator: reads cached, writes live, never stale."""

    def __init__(  # noqa: PLR0913 - keyword-only options with defaults
        self,
        live: KubeGateway,
        stores: Stores,
        *,
        crashloop_restarts: int = 3,
        fresh_wait: float = FRESH_WAIT_SECONDS,
        metrics: CacheMetrics | None = None,
        fence: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``fence`` wraps every write (leader election: raises when this replica may not write)."""
        self.live = live
        self._fence = fence
        self.stores = stores
        self._crashloop_restarts = crashloop_restarts
        self._fresh_wait = fresh_wait
        self._metrics = metrics or CacheMetrics(None)
        self._monotonic = monotonic
        self._expected: dict[ExpectKey, tuple[str | None, float]] = {}
        self._guard = threading.Lock()

    # ------------------------------------------------------------------ expectations

    def _expect(self, key: ExpectKey, version: object) -> None:
        with self._guard:
            self._expected[key] = (str(version) if version is not None else None, self._monotonic())

    def _met(self, key: ExpectKey) -> bool:
        with self._guard:
            expected = self._expected.get(key)
        if expected is None:
            return True
        version, since = expected
        store = self.stores.of(key[0])
        if caught_up(version_of(store.get(key[1], key[2])), version) or (
            self._monotonic() - since > EXPECTATION_TTL_SECONDS
        ):
            with self._guard:
                if self._expected.get(key) == expected:
                    del self._expected[key]
            return True
        return False

    def _fresh(self, keys: list[ExpectKey]) -> bool:
        """Waits (briefly) until the cache shows the operator's own writes to ``keys``."""
        with self._guard:
            pending = [k for k in keys if k in self._expected]
        if not pending:
            return True
        return self.stores.changed_wait(
            lambda: all(self._met(k) for k in pending), self._fresh_wait
        )

    # ------------------------------------------------------------------ reads

    def get_tryonmodel(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = ("TryOnModel", namespace, name)
        cached = self.stores.tryonmodels.get(namespace, name)
        if cached is not None and self._fresh([key]):
            return cached
        reason = "missing" if cached is None else "own-write"
        self._metrics.fallbacks.labels("TryOnModel", reason).inc()
        log.debug("live read of TryOnModel %s/%s: %s", namespace, name, reason)
        return self.live.get_tryonmodel(namespace, name)

    def observe(self, namespace: str, name: str) -> ClusterView:
        if not self.stores.children_synced:
            self._metrics.fallbacks.labels("children", "not-synced").inc()
            return self.live.observe(namespace, name)
        stores = self.stores
        if not self._fresh(self._expected_children(namespace, name)):
            self._metrics.fallbacks.labels("children", "own-write").inc()
            log.debug("live read of the children of %s/%s: own write not seen", namespace, name)
            return self.live.observe(namespace, name)
        children = [
            *stores.deployments.of_instance(namespace, name),
            *stores.services.of_instance(namespace, name),
        ]
        hpa = stores.hpas.get(namespace, name)
        if hpa is not None:
            children.append(hpa)
        pods = stores.pods.of_instance(namespace, name)
        return cluster_view(name, children, pods, crashloop_restarts=self._crashloop_restarts)

    def _expected_children(self, namespace: str, name: str) -> list[ExpectKey]:
        """Children the operator wrote that the cache may not list yet (just created)."""
        prefixes = (name, f"{name}-")
        with self._guard:
            return [
                k
                for k in self._expected
                if k[0] != "TryOnModel" and k[1] == namespace and k[2].startswith(prefixes)
            ]

    def gpu_capacity(self, node_selector: dict[str, str]) -> GpuCapacity:
        return self.live.gpu_capacity(node_selector)

    # ------------------------------------------------------------------ writes

    def _write(
        self, key: ExpectKey, call: Callable[[], str | None], *, none_is_no_write: bool = False
    ) -> str | None:
        """A fenced write; until the cache shows its version (None: the object gone), reads of
        ``key`` go live. With ``none_is_no_write``, None means nothing was written: no wait."""
        with self._fence():
            version = call()
        if version is not None or not none_is_no_write:
            self._expect(key, version)
        return version

    def apply(self, obj: dict[str, Any]) -> str | None:
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        return self._write(key, lambda: self.live.apply(obj))

    def restore_template(self, obj: dict[str, Any]) -> str | None:
        meta = obj["metadata"]
        key = ("Deployment", meta["namespace"], meta["name"])
        return self._write(key, lambda: self.live.restore_template(obj))

    def scale(self, namespace: str, name: str, replicas: int) -> str | None:
        key = ("Deployment", namespace, name)
        return self._write(key, lambda: self.live.scale(namespace, name, replicas))

    def set_selector_color(self, namespace: str, service: str, color: str) -> str | None:
        key = ("Service", namespace, service)
        return self._write(key, lambda: self.live.set_selector_color(namespace, service, color))

    # ScaledObjects are not watched (KEDA is optional): no expectation, reads of them are none.
    def serves_scaled_objects(self) -> bool:
        return self.live.serves_scaled_objects()

    def apply_scaled_object(self, obj: dict[str, Any]) -> str | None:
        with self._fence():
            return self.live.apply_scaled_object(obj)

    def delete_scaled_object(self, namespace: str, name: str) -> None:
        with self._fence():
            self.live.delete_scaled_object(namespace, name)

    def delete_hpa(self, namespace: str, name: str) -> str | None:
        def delete() -> None:
            self.live.delete_hpa(namespace, name)

        return self._write(("HorizontalPodAutoscaler", namespace, name), delete)

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str | None:
        key = ("TryOnModel", namespace, name)
        return self._write(key, lambda: self.live.patch_status(namespace, name, status))

    def remove_annotation(self, namespace: str, name: str, key: str) -> str | None:
        return self._write(
            ("TryOnModel", namespace, name),
            lambda: self.live.remove_annotation(namespace, name, key),
            none_is_no_write=True,  # the annotation was not there
        )

    def emit_event(
        self, owner: Owner, type_: str, reason: str, message: str, key: str | None = None
    ) -> bool:
        with self._fence():
            return self.live.emit_event(owner, type_, reason, message, key)

    def event_notified(self, owner: Owner, key: str) -> bool:
        return self.live.event_notified(owner, key)

    def mark_event_notified(self, owner: Owner, key: str) -> None:
        with self._fence():
            self.live.mark_event_notified(owner, key)
