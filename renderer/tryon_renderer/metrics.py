"""Prometheus metrics for the renderer, on a per-app registry.

Why a per-app registry: tests and the benchmark build several apps in one process; the global
default registry would raise on duplicate metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """All renderer metrics; names are prefixed `tryon_`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "tryon_request_duration_seconds",
            "End-to-end /v1/tryon latency by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "tryon_batch_size",
            "Micro-batch sizes run by the model worker",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference_time = Histogram(
            "tryon_inference_duration_seconds",
            "Model forward time per micro-batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tryon_queue_depth", "Requests waiting for the model worker", registry=self.registry
        )
        self.in_flight = Gauge(
            "tryon_in_flight_requests", "Try-on requests being handled", registry=self.registry
        )
        self.model_info = Info("tryon_model", "The served model", registry=self.registry)
        self.ready = Gauge("tryon_ready", "1 when loaded and warmed up", registry=self.registry)
