"""Prometheus metrics of the operator, on a registry of their own (no process globals)."""

from __future__ import annotations

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

    def set_active(self, namespace: str, name: str, version: str | None, color: str | None) -> None:
        for labels in list(self._active_labels(namespace, name)):
            if labels != (version, color):
                self.active_version.remove(namespace, name, *labels)
        if version is not None and color is not None:
            self.active_version.labels(namespace, name, version, color).set(1)

    def _active_labels(self, namespace: str, name: str) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for metric in self.active_version.collect():
            for sample in metric.samples:
                lab = sample.labels
                if lab.get("namespace") == namespace and lab.get("name") == name:
                    found.add((lab["version"], lab["color"]))
        return found

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        start_http_server(port, addr=host, registry=self.registry)
