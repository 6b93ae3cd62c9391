"""Prometheus metrics of the operator, on a registry of their own (no process globals)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconcile_seconds = Histogram(
            "tryon_reconcile_duration_seconds",
            "Time spent in one reconcile of a TryOnModel.",
            ["namespace", "name"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.reconcile_errors = Counter(
            "tryon_reconcile_errors_total",
            "Reconciles that ended in an error, by reason.",
            ["namespace", "name", "reason"],
            registry=self.registry,
        )
        self.rollouts = Counter(
            "tryon_rollouts_total",
            "Rollouts by outcome (started, promoted, rolled_back, superseded, cancelled).",
            ["namespace", "name", "outcome"],
            registry=self.registry,
        )
        self.promotion_latency = Histogram(
            "tryon_promotion_latency_seconds",
            "From the model selector's change seen by the operator to traffic flipped.",
            ["namespace", "name"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600),
        )
        self.active_version = Gauge(
            "tryon_active_version_info",
            "1 for the model version the active colour serves.",
            ["namespace", "name", "version", "color"],
            registry=self.registry,
        )
        self.rejected_versions = Gauge(
            "tryon_rejected_versions",
            "Number of versions currently marked rejected.",
            ["namespace", "name"],
            registry=self.registry,
        )
        # Leader election (leadership.py): 1 on the replica that holds the Lease.
        self.condition = Gauge(
            "tryon_condition",
            "1 while a TryOnModel condition (Ready, Progressing, Degraded, ModelResolved) is True.",
            ["namespace", "name", "type"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "tryon_leader",
            "1 while this replica holds the leader Lease, else 0.",
            registry=self.registry,
        )
        self.leader_transitions = Counter(
            "tryon_leader_transitions",
            "Times this replica started or stopped leading (transition: started, stopped).",
            ["transition"],
            registry=self.registry,
        )
        for transition in ("started", "stopped"):
            self.leader_transitions.labels(transition)
        # The (version, colour) series each object has, so a change removes the old one without
        # scanning every series (that scan was 15 % of the operator's time at 1,000 objects).
        self._active: dict[tuple[str, str], tuple[str, str]] = {}
        self._active_lock = threading.Lock()

    def set_active(self, namespace: str, name: str, version: str | None, color: str | None) -> None:
        key = (namespace, name)
        new = (version, color) if version is not None and color is not None else None
        with self._active_lock:
            old = self._active.get(key)
            if old is not None and old != new:
                self.active_version.remove(namespace, name, *old)
                del self._active[key]
            if new is not None:
                self.active_version.labels(namespace, name, *new).set(1)
                self._active[key] = new

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
