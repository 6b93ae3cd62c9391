#!/usr/bin/env python3
"""Autoscaling on requests in flight, on real pods, under load and across a flip.

Starts the local cluster with real-node-1 (the HPA controller at upstream's 15 s period), MLflow +
S3, a real Prometheus on the node's bridge (discovering and scraping the renderer pods every 2 s),
KEDA (operator + metrics adapter behind ``v1beta1.external.metrics.k8s.io``; ``--scaler own``
leaves it out, and the operator scales with its own loop), and the operator from the chart with
``operator.prometheusUrl`` set; serves v1 as a TryOnModel with ``spec.autoscaling`` on
``inFlight`` (target 2 per pod, 1..2 replicas: real-node-1 has 4 fake GPUs and a flip at 2 needs
all of them). Shoppers are closed-loop workers, each sending one request after another to the
Service's ClusterIP on a new connection (kube-proxy picks the pod per connection):

    steady  2 workers   (in flight ~2 on one pod: on target, nothing moves)
    step    4 workers   decision = step -> the scaler changed the Deployment's replicas;
                        serving = step -> the new pod's own /metrics counts a request answered
    flip    4 workers   the production alias moves to v2; the scaler moves with the flip
    low     1 worker    scale-in after the stabilisation window (--window, 300 s by default in
                        the product, 30 s here so the bench ends)

It prints a table per phase (replicas of each colour over time as spec/Ready, p50/p99, errors),
and as its last line:
``autoscale: decision X.X s, serving Y.Y s, failed F/N, scaler KIND on METRIC``.
Needs root and ``make images``; ``make e2e`` runs ``--short``, which fails (exit 1) when the
colour never scaled out, never flipped or never scaled in, or when more than 0.5 % of the requests
failed (a flip that drops traffic for a second or two; every run so far had none).

    .venv/bin/python bench/autoscale.py [--short] [--scaler keda|own] [--workdir .bench-autoscale]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.autoscale")

import httpx

from bench.common import log, wait_until
from hack.localcluster import incluster
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.keda import Keda, start_keda
from hack.localcluster.nodeconfig import NODE_IP
from hack.localcluster.prometheus import Prometheus, start_prometheus

REPO = Path(__file__).resolve().parent.parent

NAMESPACE, NAME = "bench-autoscale", "dress"
SERIES = "tryon_in_flight_requests"
RENDERER_PORT = 8080
SHORT_FAILED_SHARE = 0.005


@dataclass
class Shot:
    phase: str
    seconds: float
    ok: bool


@dataclass
class Load:
    """Closed-loop shoppers; ``workers`` can change while it runs."""

    url: str
    phase: str = "steady"
    workers: int = 0
    shots: list[Shot] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def set(self, phase: str, workers: int) -> None:
        self.phase = phase
        while len(self._threads) < workers:
            index = len(self._threads)
            thread = threading.Thread(target=self._shop, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()
        self.workers = workers

    def _shop(self, index: int) -> None:
        files = incluster.shopper_images()
        # No keep-alive: a kept connection would stay on one pod and never reach a new one.
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=60) as http:
            while not self._stop.is_set():
                if index >= self.workers:
                    time.sleep(0.05)
                    continue
                phase, started = self.phase, time.monotonic()
                try:
                    ok = http.post(f"{self.url}/v1/tryon", files=files).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.shots.append(Shot(phase, time.monotonic() - started, ok))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=70)


class Cluster:
    """kubectl reads of the bench namespace."""

    def __init__(self, local: LocalCluster) -> None:
        self.local = local

    def json(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.local.kubectl(*args, "-n", NAMESPACE, "-o", "json")))

    def status(self) -> dict[str, Any]:
        return incluster.tryonmodel_status(self.local.kubectl, NAME, NAMESPACE)

    def replicas(self) -> dict[str, tuple[int, int]]:
        """spec and Ready replicas of each colour's Deployment."""
        out: dict[str, tuple[int, int]] = {}
        for dep in self.json("get", "deployments")["items"]:
            colour = dep["metadata"]["labels"].get("tryon.dev/color", "?")
            ready = dep["status"].get("readyReplicas") or 0
            out[colour] = (dep["spec"].get("replicas") or 0, ready)
        return out

    def pods(self, colour: str) -> dict[str, str]:
        items = self.json("get", "pods", "-l", f"tryon.dev/color={colour}")["items"]
        return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in items}


@dataclass
class Timeline:
    """Replicas per colour sampled every second, kept only where they changed."""

    cluster: Cluster
    load: Load
    changes: list[tuple[str, float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, t0: float) -> None:
        last = ""
        while not self._stop.is_set():
            try:
                now = self.cluster.replicas()
            except Exception:  # a kubectl hiccup: the next sample says it
                now = {}
            text = " ".join(f"{c} {s}/{r}" for c, (s, r) in sorted(now.items()))
            if now and text != last:
                self.changes.append((self.load.phase, time.monotonic() - t0, text))
                last = text
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()


def answered(pod_ip: str) -> bool:
    """The pod's own counter of answered try-ons is above zero."""
    try:
        text = httpx.get(f"http://{pod_ip}:{RENDERER_PORT}/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return any(
        line.startswith('tryon_request_duration_seconds_count{outcome="ok"}')
        and float(line.rsplit(" ", 1)[1]) > 0
        for line in text.splitlines()
    )


def ready_through(cluster_ip: str) -> bool:
    try:
        return httpx.get(f"http://{cluster_ip}:80/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def manifest(model: str, backends: incluster.DevBackends, window: int) -> dict[str, Any]:
    autoscaling = {"enabled": True, "metric": "inFlight", "target": 2, "minReplicas": 1,
                   "maxReplicas": 2, "scaleDownStabilizationSeconds": window}  # fmt: skip
    return incluster.tryonmodel(NAME, NAMESPACE, model, backends, autoscaling=autoscaling,
                                scaleDownDelaySeconds=10)  # fmt: skip


@dataclass(frozen=True)
class Durations:
    steady: float
    hold: float
    window: int
    scale_timeout: float


def scenario(
    cluster: Cluster, load: Load, models: incluster.Models, durations: Durations
) -> dict[str, Any]:
    """The four phases; what the last line needs."""
    status = cluster.status()
    active = status["activeColor"]
    load.set("steady", 2)
    time.sleep(durations.steady)
    before = set(cluster.pods(active))
    log("load step: 4 workers")
    step = time.monotonic()
    load.set("step", 4)
    wait_until("the scaler to ask for a second replica",
               lambda: cluster.replicas()[active][0] > 1, durations.scale_timeout, 0.2)  # fmt: skip
    decision = time.monotonic() - step
    log(f"decision after {decision:.1f} s")

    def new_pod_answered() -> bool:
        fresh = {n: ip for n, ip in cluster.pods(active).items() if n not in before and ip}
        return any(answered(ip) for ip in fresh.values())

    wait_until("the new replica to answer a request", new_pod_answered, 180, every=0.25)
    serving = time.monotonic() - step
    log(f"the new replica answered after {serving:.1f} s")
    time.sleep(durations.hold)
    log("alias move to v2 under load")
    load.set("flip", 4)
    v2 = models.register(seed=2)
    models.promote(v2)
    wait_until(
        "the flip to v2 and the end of the rollout",
        lambda: (s := cluster.status()).get("activeVersion") == v2 and not s.get("rollout"),
        400,
        every=1.0,
    )
    log("flipped; load falls to 1 worker")
    load.set("low", 1)
    flipped = cluster.status()["activeColor"]
    wait_until(f"scale-in of {flipped} to 1 replica",
               lambda: cluster.replicas()[flipped][0] == 1,
               durations.window + durations.scale_timeout + 30, every=1.0)  # fmt: skip
    time.sleep(3)
    scaling = cluster.status().get("autoscaling") or {}
    return {"decision": decision, "serving": serving, "scaler": scaling.get("scaler")}


def table(load: Load, timeline: Timeline) -> list[str]:
    lines = [f"{'phase':<7} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7}  replicas"
             " (colour spec/Ready, at s)"]  # fmt: skip
    for phase in ("steady", "step", "flip", "low"):
        shots = [s for s in load.shots if s.phase == phase]
        times = sorted(s.seconds * 1000 for s in shots if s.ok)
        p50 = statistics.median(times) if times else float("nan")
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
        seen = "; ".join(f"{t:.0f}s {text}" for p, t, text in timeline.changes if p == phase)
        failed = sum(not s.ok for s in shots)
        lines.append(f"{phase:<7} {len(shots):>8} {failed:>6} {p50:>7.0f} {p99:>7.0f}  {seen}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="make e2e's version (about 4 min)")
    parser.add_argument("--scaler", choices=("keda", "own"), default="keda",
                        help="KEDA's ScaledObject, or the operator's own loop (no KEDA)")
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench-autoscale")
    args = parser.parse_args(argv)
    durations = (
        Durations(steady=10, hold=10, window=20, scale_timeout=60)
        if args.short
        else Durations(steady=40, hold=40, window=30, scale_timeout=60)
    )
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    local = LocalCluster(args.workdir / "cluster", real_node=True, hpa_sync_seconds=15)
    info = local.up()
    prometheus: Prometheus | None = None
    keda: Keda | None = None
    backends = None
    try:
        backends = incluster.start_dev_backends(args.workdir, local.kubectl)
        os.environ.update(backends.mlflow.env)
        started = time.monotonic()
        prometheus = start_prometheus(args.workdir / "prometheus", Path(info.kubeconfig), NODE_IP)
        log(f"Prometheus ready after {time.monotonic() - started:.1f} s")
        if args.scaler == "keda":  # before the operator, which asks once a minute whether it is
            started = time.monotonic()
            keda = start_keda(args.workdir / "keda", Path(info.kubeconfig), info.kubectl, NODE_IP)
            log(f"KEDA serving external metrics after {time.monotonic() - started:.1f} s")
        values = incluster.operator_values(backends.tracking_uri_in_cluster)
        values["operator"]["prometheusUrl"] = prometheus.url
        incluster.apply(local.kubectl, *incluster.operator_namespace())
        incluster.helm_install_operator(incluster.helm_binary(), info.kubeconfig, values,
                                        args.workdir)  # fmt: skip
        incluster.apply(local.kubectl, *incluster.workload_namespace(NAMESPACE, backends.s3))
        has_account = lambda: local.kubectl("get", "sa", "default", "-n", NAMESPACE)  # noqa: E731
        wait_until("the default ServiceAccount", has_account, 30, 0.5)
        models = incluster.Models("bench-autoscale", os.environ["MLFLOW_TRACKING_URI"])
        models.promote(models.register(seed=1))
        body = json.dumps(manifest(models.name, backends, durations.window))
        local.kubectl("apply", "-f", "-", input_text=body)
        cluster = Cluster(local)
        wait_until("v1 serving", lambda: incluster.serving(cluster.status()), 300, 1.0)
        ip = cluster.json("get", "service", NAME)["spec"]["clusterIP"]
        # kube-proxy programs a new Service's rules a moment after the operator reports Healthy;
        # refused connections then are not the scaler's doing, so the load starts once it answers.
        wait_until("the ClusterIP to answer", lambda: ready_through(ip), 60, 0.5)
        load = Load(f"http://{ip}:80")
        timeline = Timeline(cluster, load)
        threading.Thread(target=timeline.run, args=(time.monotonic(),), daemon=True).start()
        try:
            result = scenario(cluster, load, models, durations)
        finally:
            load.stop()
            timeline.stop()
        for line in table(load, timeline):
            print(line)
        failed = sum(not s.ok for s in load.shots)
        print(
            f"autoscale: decision {result['decision']:.1f} s, serving {result['serving']:.1f} s, "
            f"failed {failed}/{len(load.shots)}, scaler {result['scaler']} on {SERIES}"
        )
        return 1 if args.short and failed > SHORT_FAILED_SHARE * len(load.shots) else 0
    except TimeoutError as err:
        print(f"autoscale: {err}", file=sys.stderr)
        print(incluster.pods_table(local.kubectl, NAMESPACE), file=sys.stderr)
        return 1
    finally:
        if keda is not None:
            keda.stop()
        if prometheus is not None:
            prometheus.stop()
        if backends is not None:
            backends.stop()
        local.down()


if __name__ == "__main__":
    sys.exit(main())
