#!/usr/bin/env python3
"""Operator benchmark: tryon-operator next to Argo Rollouts' blue/green controller, same run.

On one fresh local control plane (hack/localcluster: real kube-apiserver, etcd, controller-manager,
scheduler, kwok) with real MLflow + S3 servers, it measures for both controllers:

* time until N objects created at once are Healthy, then N grown to the next size;
* steady state: API write calls per minute by the controller's resources (target 0), reads,
  controller CPU (share of one core, /proc utime+stime) and RSS;
* a wave of W promotions at once: last new pod Ready -> active Service selector flipped
  (promotion overhead), trigger -> flip, and time until all W flipped; ours twice: with MLflow
  polling alone, and with the MLflow webhook;
* rollback: failure visible in the API -> active selector back on the healthy colour.

Latencies are taken from the benchmark's own watches (receive time, monotonic clock) of pods and
Services, the same way for both controllers. Smoke tests hit a local stub that answers
{"passed": true} at once; the time spent in them is printed separately.

    .venv/bin/python bench/operator_bench.py            # quick: 100 objects, 100-object waves
    .venv/bin/python bench/operator_bench.py --full     # 100 then 1,000 objects (many minutes)
    .venv/bin/python bench/operator_bench.py --sizes 50 --wave 30 --skip-argo
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "hack" / "localcluster"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster_load import (  # noqa: E402
    READ_VERBS,
    WRITE_VERBS,
    Api,
    ProcSampler,
    RawWatch,
    Tracker,
    count_calls,
    diff_counts,
    fmt,
    ns_path,
    percentile,
    ratio,
    request_counts,
    table,
    wait_until,
)
from cluster import LocalCluster, _free_port, node_manifest  # noqa: E402

GROUP, VERSION, PLURAL = "tryon.dev", "v1alpha1", "tryonmodels"
ARGO_GROUP, ARGO_VERSION = "argoproj.io", "v1alpha1"
PER_NAMESPACE = 20
IMAGE = "registry.example.com/tryon-renderer:1.0.0"
KIND_LABEL = "bench.tryon.dev/kind"
BIN = Path(sys.executable).parent
WEBHOOK_SECRET = "bench-secret"
SCALE_DOWN_DELAY = 30  # Argo's default, used for both

# Resources each controller writes; subresource filter None = any. Deployments' and ReplicaSets'
# status subresource is the controller-manager's, so it is left out. Events are counted apart:
# the scheduler's, controller-manager's and kwok's rate-limited event recorders keep posting
# for minutes after a burst, so they cannot be told from a controller's by resource.
OUR_RESOURCES: dict[str, tuple[str, ...] | None] = {
    "tryonmodels": None,
    "deployments": ("", "scale"),
    "services": None,
    "horizontalpodautoscalers": None,
}
OUR_READS: dict[str, tuple[str, ...] | None] = {
    "tryonmodels": None,
    "deployments": None,
    "services": None,
    "pods": None,
    "horizontalpodautoscalers": None,
}
ARGO_RESOURCES: dict[str, tuple[str, ...] | None] = {
    "rollouts": None,
    "replicasets": ("", "scale"),
    "services": None,
    "analysisruns": None,
    "experiments": None,
}
ARGO_READS: dict[str, tuple[str, ...] | None] = {
    "rollouts": None,
    "replicasets": None,
    "services": None,
    "pods": None,
    "analysisruns": None,
}


def log(text: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- local stubs


@dataclass
class Stub:
    """Smoke endpoint for our operator and a web metric for Argo's analysis, both instant."""

    port: int = 0
    smoke_calls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                if len(parts) >= 2:
                    with stub.lock:
                        stub.smoke_calls.setdefault((parts[0], parts[1]), []).append(
                            time.monotonic()
                        )
                self._json({"passed": True, "reason": "bench stub"})

            def do_GET(self) -> None:
                self._json({"ok": True})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def last_smoke(self, namespace: str, service: str, since: float) -> float | None:
        with self.lock:
            calls = [t for t in self.smoke_calls.get((namespace, service), []) if t >= since]
        return calls[-1] if calls else None


class Mlflow:
    """The few registry REST calls the benchmark needs (real MLflow server)."""

    def __init__(self, uri: str) -> None:
        self.client = httpx.Client(base_url=uri + "/api/2.0/mlflow", timeout=30.0)

    def _post(self, path: str, body: dict[str, Any], ok: tuple[str, ...] = ()) -> dict[str, Any]:
        resp = self.client.post(path, json=body)
        if resp.status_code >= 400:
            if any(code in resp.text for code in ok):
                return {}
            raise RuntimeError(f"MLflow {path}: {resp.status_code} {resp.text[:200]}")
        return dict(resp.json())

    def new_version(self, model: str) -> str:
        self._post("/registered-models/create", {"name": model}, ok=("RESOURCE_ALREADY_EXISTS",))
        mv = self._post(
            "/model-versions/create", {"name": model, "source": f"s3://mlflow/bench/{model}"}
        )
        return str(mv["model_version"]["version"])

    def set_alias(self, model: str, version: str) -> None:
        self._post(
            "/registered-models/alias", {"name": model, "alias": "production", "version": version}
        )


def send_webhook(port: int, model: str, version: str) -> None:
    """Signed like MLflow's webhooks: HMAC-SHA256 over '<delivery id>.<timestamp>.<body>'."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": model, "alias": "production", "version": version},
        }
    )
    delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
    digest = hmac.new(
        WEBHOOK_SECRET.encode(), f"{delivery}.{stamp}.{body}".encode(), hashlib.sha256
    ).digest()
    resp = httpx.post(
        f"http://127.0.0.1:{port}/webhooks/mlflow",
        content=body,
        timeout=10.0,
        headers={
            "Content-Type": "application/json",
            "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
            "X-MLflow-Delivery-Id": delivery,
            "X-MLflow-Timestamp": stamp,
        },
    )
    resp.raise_for_status()


# ----------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class Obj:
    namespace: str
    name: str
    model: str  # our registered model (one per object, so alias moves are per object)


def layout(prefix: str, start: int, count: int, own_models: int | None = None) -> list[Obj]:
    """Objects ``start..start+count``; the first ``own_models`` get a registered model each (the
    ones whose alias the benchmark moves), the rest share 10 models, which keeps MLflow set-up
    short at 1,000 objects. The operator polls per object either way."""
    own = count if own_models is None else own_models
    return [
        Obj(
            f"{prefix}-{i // PER_NAMESPACE}",
            f"m{i}",
            f"bench-{prefix}-{i}" if i < own else f"bench-{prefix}-shared-{i % 10}",
        )
        for i in range(start, start + count)
    ]


def tryonmodel(o: Obj, *, rollback: bool) -> dict[str, Any]:
    hold = 120 if rollback else 0
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TryOnModel",
        "metadata": {"name": o.name, "namespace": o.namespace},
        "spec": {
            "model": {"registeredModel": o.model, "alias": "production"},
            "renderer": {
                "image": IMAGE,
                "replicas": 2,
                "resources": {"limits": {"nvidia.com/gpu": 1}},
                "podLabels": {KIND_LABEL: "ours"},
            },
            "service": {"port": 80},
            "rollout": {
                "autoPromote": True,
                "progressDeadlineSeconds": 600,
                "postPromotionSeconds": hold,
                "scaleDownDelaySeconds": 120 if rollback else SCALE_DOWN_DELAY,
                "smokeTest": {"enabled": True},
            },
        },
    }


def rollout(o: Obj, *, rollback: bool, revision: int = 1) -> dict[str, Any]:
    blue_green: dict[str, Any] = {
        "activeService": o.name,
        "previewService": f"{o.name}-preview",
        "autoPromotionEnabled": True,
        "scaleDownDelaySeconds": 120 if rollback else SCALE_DOWN_DELAY,
    }
    if rollback:
        blue_green["postPromotionAnalysis"] = {"templates": [{"templateName": "bench-hold"}]}
    return {
        "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}",
        "kind": "Rollout",
        "metadata": {"name": o.name, "namespace": o.namespace},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": o.name}},
            "template": {
                "metadata": {
                    "labels": {"app": o.name, KIND_LABEL: "argo"},
                    "annotations": {"bench.tryon.dev/revision": str(revision)},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "renderer",
                            "image": IMAGE,
                            "ports": [{"containerPort": 8080}],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                        }
                    ]
                },
            },
            "strategy": {"blueGreen": blue_green},
        },
    }


def service(o: Obj, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": o.namespace},
        "spec": {"selector": {"app": o.name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def analysis_template(namespace: str, stub_port: int) -> dict[str, Any]:
    """Post-promotion analysis that keeps succeeding (every 60 s, 100 times): it only holds the
    Rollout in its post-promotion step so that an abort there switches back."""
    return {
        "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "bench-hold", "namespace": namespace},
        "spec": {
            "metrics": [
                {
                    "name": "hold",
                    "interval": "60s",
                    "count": 100,
                    "successCondition": "result == true",
                    "provider": {
                        "web": {
                            "url": f"http://127.0.0.1:{stub_port}/argo-analysis",
                            "jsonPath": "{$.ok}",
                        }
                    },
                }
            ]
        },
    }


# ----------------------------------------------------------------------------- the harness


@dataclass
class Controller:
    """One side of the comparison: how to create, promote, fail and observe its objects."""

    label: str
    prefix: str
    pid: int = 0
    sampler: ProcSampler | None = None
    writes: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    reads: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tryon-bench-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stack = contextlib.ExitStack()
        self.cluster = LocalCluster(
            self.workdir / "cluster", controller_manager_qps=args.controller_manager_qps
        )
        self.tracker = Tracker()
        self.stub = Stub()
        self.pool = cf.ThreadPoolExecutor(max_workers=8)
        self.load_at_start = " ".join(f"{x:.2f}" for x in os.getloadavg())

    # -- setup ------------------------------------------------------------------

    def setup(self) -> None:
        log(f"workdir {self.workdir}; starting the local control plane")
        started = time.monotonic()
        info = self.cluster.up()
        self.stack.callback(self.cluster.down)
        self.info = info
        self.api = Api(info.server, self.cluster.pki)
        log(f"control plane up in {time.monotonic() - started:.0f}s")
        largest = max(self.args.sizes)
        objects = largest + self.args.rollbacks
        # Steady state: 2 pods per object per controller; waves add 2 per promoted object.
        pods = 2 * 2 * objects + 2 * 2 * (self.args.wave + self.args.rollbacks)
        nodes = math.ceil(pods / 100) + 1
        for i in range(nodes):
            node = node_manifest(f"bench-node-{i}", 110)  # GPU count = pod slots: GPUs never bind
            self.api.create("/api/v1/nodes", node)
        wait_until("bench nodes Ready", lambda: self._nodes_ready() >= nodes + 3, 180)
        log(f"{nodes} extra kwok nodes ({nodes * 110} GPUs) Ready")
        self.stub.start()
        for path, handler, selector in (
            ("/api/v1/pods", self.tracker.on_pod, KIND_LABEL),
            ("/api/v1/services", self.tracker.on_service, ""),
            ("/apis/apps/v1/deployments", self.tracker.on_deployment, ""),
        ):
            watch = RawWatch(self.api, path, handler, selector)
            watch.start()
            watch.synced.wait(30)
            self.stack.callback(watch.stop.set)
        if not self.args.skip_ours:
            from devservers import start_mlflow_server, start_s3_server

            for sub in ("s3", "mlflow"):
                (self.workdir / sub).mkdir(exist_ok=True)
            s3 = start_s3_server(self.workdir / "s3")
            self.stack.callback(s3.process.stop)
            self.mlflow_server = start_mlflow_server(self.workdir / "mlflow", s3)
            self.stack.callback(self.mlflow_server.stop)
            self.mlflow = Mlflow(self.mlflow_server.tracking_uri)
            self.mlflow_pid = self.mlflow_server.process.proc.pid
            log(f"MLflow at {self.mlflow_server.tracking_uri}")

    def _nodes_ready(self) -> int:
        items = self.api.get("/api/v1/nodes")["items"]
        return sum(
            1
            for n in items
            for c in n["status"].get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        )

    def _established(self, crd: str) -> bool:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
        obj = self.api.request("GET", path, ok=(404,)) or {}
        return any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (obj.get("status") or {}).get("conditions") or []
        )

    def kubectl(self, *args: str) -> str:
        return self.cluster.kubectl(*args)

    def start_process(self, name: str, argv: list[str], env: dict[str, str]) -> int:
        logf = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

        self.stack.callback(stop)
        self._stoppers = getattr(self, "_stoppers", {})
        self._stoppers[name] = stop
        return proc.pid

    def run_all(self, calls: list[Callable[[], Any]]) -> list[Any]:
        return list(self.pool.map(lambda f: f(), calls))

    # -- shared measurements ----------------------------------------------------

    def counts(self) -> dict[tuple[str, str, str], float]:
        return request_counts(self.api.metrics_text())

    def measure_steady(self, ctl: Controller, size: int) -> dict[str, float]:
        log(f"{ctl.label}: steady state at {size} objects for {self.args.steady}s")
        time.sleep(self.args.settle)
        before, t0 = self.counts(), time.monotonic()
        profile = None
        if self.args.profile and ctl.label == "tryon-operator" and shutil.which("py-spy"):
            out = self.workdir / f"py-spy-{size}.txt"
            profile = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(ctl.pid),
                    "--duration",
                    str(int(self.args.steady)),
                    "--format",
                    "raw",
                    "--rate",
                    "50",
                    "-o",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(self.args.steady)
        after, t1 = self.counts(), time.monotonic()
        if profile is not None:
            profile.wait(60)
        diff = diff_counts(before, after)
        minutes = (t1 - t0) / 60
        assert ctl.sampler is not None
        cpu, peak, rss = ctl.sampler.window(t0, t1)
        return {
            "writes_per_min": count_calls(diff, WRITE_VERBS, ctl.writes) / minutes,
            "reads_per_min": count_calls(diff, READ_VERBS, ctl.reads) / minutes,
            "all_writes_per_min": sum(n for (v, _, _), n in diff.items() if v in WRITE_VERBS)
            / minutes,
            "events_per_min": count_calls(diff, WRITE_VERBS, {"events": None}) / minutes,
            "cpu": cpu,
            "rss": rss,
            "rss_peak": peak,
            "write_detail": {
                f"{v} {r}{'/' + s if s else ''}": round(n, 1)
                for (v, r, s), n in diff.items()
                if v in WRITE_VERBS and r in ctl.writes
            },
            "read_detail": {
                f"{v} {r}{'/' + s if s else ''}": round(n / minutes, 1)
                for (v, r, s), n in diff.items()
                if v in READ_VERBS and r in ctl.reads
            },
        }

    def wait_healthy(
        self, ctl: Controller, list_path: str, want: set[tuple[str, str]], started: float
    ) -> dict[str, float]:
        def healthy() -> int:
            items = self.api.get(list_path)["items"]
            return sum(
                1
                for i in items
                if (i["metadata"]["namespace"], i["metadata"]["name"]) in want
                and (i.get("status") or {}).get("phase") == "Healthy"
            )

        done = 0
        deadline = started + self.args.healthy_timeout
        while time.monotonic() < deadline:
            done = healthy()
            if done >= len(want):
                break
            time.sleep(1.0)
        took = time.monotonic() - started
        assert ctl.sampler is not None
        cpu, peak, _ = ctl.sampler.window(started, time.monotonic())
        if done < len(want):
            log(f"{ctl.label}: only {done}/{len(want)} Healthy after {took:.0f}s")
        return {
            "healthy_s": took if done >= len(want) else math.nan,
            "healthy": done,
            "cpu_during": cpu,
            "rss_peak_during": peak,
        }

    def flips_for(self, objs: list[Obj], since: float, back: bool = False) -> dict[Obj, Any]:
        """The first flip of each object's active Service after ``since``."""
        wanted = {(o.namespace, o.name): o for o in objs}
        found: dict[Obj, Any] = {}
        for f in self.tracker.flips_since(since):
            o = wanted.get((f.namespace, f.service))
            if o is not None and o not in found:
                found[o] = f
        return found

    def wait_flips(self, objs: list[Obj], since: float, what: str) -> dict[Obj, Any]:
        deadline = time.monotonic() + self.args.wave_timeout
        found: dict[Obj, Any] = {}
        while time.monotonic() < deadline:
            found = self.flips_for(objs, since)
            if len(found) >= len(objs):
                break
            time.sleep(0.2)
        if len(found) < len(objs):
            log(f"{what}: only {len(found)}/{len(objs)} flipped before the timeout")
        return found

    # -- our operator -----------------------------------------------------------

    def run_ours(self) -> Controller:
        ctl = Controller("tryon-operator", "bop", writes=OUR_RESOURCES, reads=OUR_READS)
        self.kubectl("apply", "-f", str(REPO / "crds" / "tryonmodel.yaml"))
        wait_until(
            "CRD tryonmodels established", lambda: self._established(f"{PLURAL}.{GROUP}"), 60
        )
        webhook_port = _free_port()
        self.metrics_port = _free_port()
        env = {
            "KUBECONFIG": self.info.kubeconfig,
            "TRYON_METRICS_PORT": str(self.metrics_port),
            "TRYON_METRICS_HOST": "127.0.0.1",
            "TRYON_MLFLOW_TRACKING_URI": self.mlflow_server.tracking_uri,
            "TRYON_SERVICE_URL_TEMPLATE": f"http://127.0.0.1:{self.stub.port}/{{namespace}}/{{service}}",
            "TRYON_WEBHOOK_PORT": str(webhook_port),
            "TRYON_WEBHOOK_HOST": "127.0.0.1",
            "TRYON_WEBHOOK_SECRET": WEBHOOK_SECRET,
            # loopback-only bench sender signs like MLflow; it measures reconcile, not TLS
            "TRYON_WEBHOOK_ALLOW_HTTP": "true",
        }
        from tryon_operator.settings import OperatorSettings

        ctl.results["settings"] = {}
        for setting in ("resync_seconds", "mlflow_poll_seconds", "reconcile_workers"):
            key = "TRYON_" + setting.upper()
            if os.environ.get(key):
                env[key] = os.environ[key]
            default = OperatorSettings.model_fields[setting].default
            ctl.results["settings"][setting] = env.get(key, f"{default} (default)")
        rb = layout(ctl.prefix + "rb", 0, self.args.rollbacks)
        all_objs = layout(ctl.prefix, 0, max(self.args.sizes), own_models=self.args.wave)
        models = sorted({o.model for o in all_objs + rb})
        log(f"registering {len(models)} models with version 1 in MLflow")
        self.run_all(
            [lambda m=m: self.mlflow.set_alias(m, self.mlflow.new_version(m)) for m in models]
        )
        extra = os.environ.get("TRYON_BENCH_OPERATOR_ARGS", "").split()  # e.g. -v: debug log
        ctl.pid = self.start_process("tryon-operator", [str(BIN / "tryon-operator"), *extra], env)
        ctl.sampler = ProcSampler(ctl.pid)
        ctl.sampler.start()
        wait_until("operator webhook", lambda: _port_open(webhook_port), 60)
        log(f"tryon-operator running (pid {ctl.pid})")

        def create(objs: list[Obj], rollback: bool = False) -> None:
            for ns in sorted({o.namespace for o in objs}):
                self.api.create(
                    "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                )
            self.run_all(
                [
                    lambda o=o: self.api.create(
                        ns_path(o.namespace, PLURAL, GROUP, VERSION),
                        tryonmodel(o, rollback=rollback),
                    )
                    for o in objs
                ]
            )

        list_path = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        self.scale_steps(ctl, all_objs, create, list_path)
        # Rollback objects come in last so the scale figures are of the plain objects only.
        t = time.monotonic()
        create(rb, rollback=True)
        self.wait_healthy(ctl, list_path, {(o.namespace, o.name) for o in rb}, t)

        wave = all_objs[: self.args.wave]
        for mode in ("polling", "webhook"):
            ctl.results[f"wave_{mode}"] = self.our_wave(ctl, wave, mode, webhook_port)
            summarize(f"ours wave ({mode})", ctl.results[f"wave_{mode}"])
            self.wait_healthy(
                ctl, list_path, {(o.namespace, o.name) for o in wave}, time.monotonic()
            )
        ctl.results["rollback"] = self.our_rollback(ctl, rb, webhook_port)
        summarize("ours rollback", ctl.results["rollback"])
        self._stoppers["tryon-operator"]()
        return ctl

    def our_wave(
        self, ctl: Controller, objs: list[Obj], mode: str, webhook_port: int
    ) -> dict[str, Any]:
        log(f"tryon-operator: promotion wave of {len(objs)} ({mode})")
        versions = self.run_all([lambda o=o: self.mlflow.new_version(o.model) for o in objs])
        moved: dict[Obj, float] = {}

        def move(o: Obj, v: str) -> None:
            self.mlflow.set_alias(o.model, v)
            moved[o] = time.monotonic()
            if mode == "webhook":
                send_webhook(webhook_port, o.model, v)

        reconciles_before = self.our_reconciles(objs)
        t0 = time.monotonic()
        self.run_all([lambda o=o, v=v: move(o, v) for o, v in zip(objs, versions, strict=True)])
        flips = self.wait_flips(objs, t0, f"ours {mode}")
        reconciles_after = self.our_reconciles(objs)
        reconciles = [
            after[0] - reconciles_before[key][0] for key, after in reconciles_after.items()
        ]
        reconcile_seconds = [
            (after[1] - reconciles_before[key][1]) / (after[0] - reconciles_before[key][0])
            for key, after in reconciles_after.items()
            if after[0] > reconciles_before[key][0]
        ]
        t_all = max((f.at for f in flips.values()), default=math.nan) - t0
        cpu, peak, _ = ctl.sampler.window(t0, time.monotonic()) if ctl.sampler else (0, 0, 0)
        overhead, trigger_to_flip, to_deploy, ready_to_smoke, smoke_to_flip = [], [], [], [], []
        for o, v in zip(objs, versions, strict=True):
            f = flips.get(o)
            if f is None:
                continue
            trigger_to_flip.append(f.at - moved[o])
            if f.last_ready is not None:
                overhead.append(f.at - f.last_ready)
            dep = self._first_scale_up(o, moved[o], v)
            if dep is not None:
                to_deploy.append(dep - moved[o])
            smoke = self.stub.last_smoke(o.namespace, f"{o.name}-preview", moved[o])
            if smoke is not None and f.last_ready is not None:
                ready_to_smoke.append(smoke - f.last_ready)
                smoke_to_flip.append(f.at - smoke)
        return {
            "n": len(objs),
            "flipped": len(flips),
            "all_flipped_s": t_all,
            "overhead": overhead,
            "trigger_to_flip": trigger_to_flip,
            "trigger_to_deploy": to_deploy,
            "ready_to_smoke": ready_to_smoke,
            "smoke_to_flip": smoke_to_flip,
            "reconciles_to_flip": reconciles,
            "reconcile_seconds": reconcile_seconds,
            "cpu": cpu,
            "rss_peak": peak,
        }

    def our_reconciles(self, objs: list[Obj]) -> dict[tuple[str, str], tuple[float, float]]:
        """(reconciles run, seconds spent in them) so far per object, from the operator's own
        ``tryon_reconcile_duration_seconds`` histogram."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        found: dict[tuple[str, tuple[str, str]], float] = {}
        for line in text.splitlines():
            for part in ("count", "sum"):
                if line.startswith(f"tryon_reconcile_duration_seconds_{part}{{"):
                    labels = dict(
                        kv.split("=", 1)
                        for kv in line[line.index("{") + 1 : line.index("}")].split(",")
                    )
                    key = (labels["namespace"].strip('"'), labels["name"].strip('"'))
                    found[(part, key)] = float(line.rsplit(" ", 1)[1])
        return {
            (o.namespace, o.name): (
                found.get(("count", (o.namespace, o.name)), 0.0),
                found.get(("sum", (o.namespace, o.name)), 0.0),
            )
            for o in objs
        }

    def _first_scale_up(self, o: Obj, since: float, version: str) -> float | None:
        with self.tracker.lock:
            times = [
                t
                for color in ("blue", "green")
                for t, v, r in self.tracker.deployments.get((o.namespace, f"{o.name}-{color}"), [])
                if t >= since and v == version and r > 0
            ]
        return min(times) if times else None

    def our_rollback(self, ctl: Controller, objs: list[Obj], webhook_port: int) -> dict[str, Any]:
        log(f"tryon-operator: promote then break {len(objs)} objects (rollback)")
        promo = self.our_wave(ctl, objs, "webhook", webhook_port)
        t_break = time.monotonic()
        victims: dict[Obj, list[str]] = {}
        with self.tracker.lock:
            for o in objs:
                color = self.tracker.selectors.get((o.namespace, o.name), {}).get("tryon.dev/color")
                victims[o] = [
                    uid
                    for uid, p in self.tracker.pods.items()
                    if p.namespace == o.namespace
                    and not p.deleted
                    and p.labels.get("app.kubernetes.io/instance") == o.name
                    and p.labels.get("tryon.dev/color") == color
                ]
        pod_names = self._pod_names(objs)

        def break_pods(o: Obj) -> None:
            for uid in victims[o]:
                name = pod_names.get(uid)
                if name:
                    self.api.merge_patch(
                        f"{ns_path(o.namespace, 'pods')}/{name}",
                        {"metadata": {"labels": {"sim.tryon.dev/fault": "crashloop"}}},
                    )

        self.run_all([lambda o=o: break_pods(o) for o in objs])
        back = self.wait_flips(objs, t_break, "ours rollback")
        latencies = []
        for o, f in back.items():
            with self.tracker.lock:
                seen = [
                    self.tracker.pods[u].unready_at
                    for u in victims[o]
                    if self.tracker.pods[u].unready_at is not None
                ]
            if seen:
                latencies.append(f.at - min(seen))
        return {
            "n": len(objs),
            "flipped_back": len(back),
            "latency": latencies,
            "promotion": promo,
            "signal": "first broken pod seen NotReady (watch)",
        }

    def _pod_names(self, objs: list[Obj]) -> dict[str, str]:
        names: dict[str, str] = {}
        for ns in {o.namespace for o in objs}:
            for pod in self.api.get(ns_path(ns, "pods"))["items"]:
                names[pod["metadata"]["uid"]] = pod["metadata"]["name"]
        return names

    # -- scale steps (both controllers) ------------------------------------------

    def scale_steps(
        self,
        ctl: Controller,
        all_objs: list[Obj],
        create: Callable[[list[Obj]], None],
        list_path: str,
    ) -> None:
        have = 0
        for size in self.args.sizes:
            new = all_objs[have:size]
            log(f"{ctl.label}: creating {len(new)} objects at once (total {size})")
            t = time.monotonic()
            create(new)
            created_s = time.monotonic() - t
            res = self.wait_healthy(
                ctl, list_path, {(o.namespace, o.name) for o in all_objs[:size]}, t
            )
            res["create_s"] = created_s
            res["added"] = len(new)
            res |= self.measure_steady(ctl, size)
            ctl.results[f"size_{size}"] = res
            brief = {k: v for k, v in res.items() if k != "write_detail"}
            log(f"{ctl.label} @ {size}: {json.dumps(brief, default=str)}")
            have = size

    # -- Argo Rollouts ------------------------------------------------------------

    def run_argo(self) -> Controller:
        ctl = Controller("argo-rollouts", "bar", writes=ARGO_RESOURCES, reads=ARGO_READS)
        out = subprocess.run(
            ["bash", str(REPO / "bench" / "build-argo-rollouts.sh")],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()
        binary, src = Path(out[0]) / "rollouts-controller", Path(out[1])
        ctl.results["version"] = Path(out[0]).name
        for crd in sorted((src / "manifests" / "crds").glob("*-crd.yaml")):
            self.kubectl("apply", "--server-side", "-f", str(crd))
        for crd in ("rollouts", "analysisruns", "analysistemplates"):
            wait_until(
                f"CRD {crd} established", lambda c=crd: self._established(f"{c}.{ARGO_GROUP}"), 60
            )
        self.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argo-rollouts"}},
        )
        ctl.pid = self.start_process(
            "argo-rollouts",
            [
                str(binary),
                f"--kubeconfig={self.info.kubeconfig}",
                "--leader-elect=false",
                f"--metricsPort={_free_port()}",
                f"--healthzPort={_free_port()}",
                "--loglevel=warn",
            ],
            {"POD_NAMESPACE": "argo-rollouts"},
        )
        ctl.sampler = ProcSampler(ctl.pid)
        ctl.sampler.start()
        time.sleep(3)
        log(f"argo-rollouts running (pid {ctl.pid})")

        def create(objs: list[Obj], rollback: bool = False) -> None:
            for ns in sorted({o.namespace for o in objs}):
                self.api.create(
                    "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                )
                if rollback:
                    self.api.create(
                        ns_path(ns, "analysistemplates", ARGO_GROUP, ARGO_VERSION),
                        analysis_template(ns, self.stub.port),
                    )

            def one(o: Obj) -> None:
                self.api.create(ns_path(o.namespace, "services"), service(o, o.name))
                self.api.create(ns_path(o.namespace, "services"), service(o, f"{o.name}-preview"))
                self.api.create(
                    ns_path(o.namespace, "rollouts", ARGO_GROUP, ARGO_VERSION),
                    rollout(o, rollback=rollback),
                )

            self.run_all([lambda o=o: one(o) for o in objs])

        list_path = f"/apis/{ARGO_GROUP}/{ARGO_VERSION}/rollouts"
        all_objs = layout(ctl.prefix, 0, max(self.args.sizes))
        rb = layout(ctl.prefix + "rb", 0, self.args.rollbacks)
        self.scale_steps(ctl, all_objs, create, list_path)
        t = time.monotonic()
        create(rb, rollback=True)
        self.wait_healthy(ctl, list_path, {(o.namespace, o.name) for o in rb}, t)
        wave = all_objs[: self.args.wave]
        ctl.results["wave"] = self.argo_wave(ctl, wave, revision=2)
        summarize("argo wave", ctl.results["wave"])
        ctl.results["rollback"] = self.argo_rollback(ctl, rb)
        summarize("argo rollback", ctl.results["rollback"])
        self._stoppers["argo-rollouts"]()
        return ctl

    def argo_wave(self, ctl: Controller, objs: list[Obj], revision: int) -> dict[str, Any]:
        log(f"argo-rollouts: promotion wave of {len(objs)}")
        moved: dict[Obj, float] = {}

        def bump(o: Obj) -> None:
            self.api.merge_patch(
                f"{ns_path(o.namespace, 'rollouts', ARGO_GROUP, ARGO_VERSION)}/{o.name}",
                {
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {"bench.tryon.dev/revision": str(revision)}}
                        }
                    }
                },
            )
            moved[o] = time.monotonic()

        t0 = time.monotonic()
        self.run_all([lambda o=o: bump(o) for o in objs])
        flips = self.wait_flips(objs, t0, "argo wave")
        t_all = max((f.at for f in flips.values()), default=math.nan) - t0
        cpu, peak, _ = ctl.sampler.window(t0, time.monotonic()) if ctl.sampler else (0, 0, 0)
        overhead = [f.at - f.last_ready for f in flips.values() if f.last_ready is not None]
        return {
            "n": len(objs),
            "flipped": len(flips),
            "all_flipped_s": t_all,
            "overhead": overhead,
            "trigger_to_flip": [f.at - moved[o] for o, f in flips.items()],
            "cpu": cpu,
            "rss_peak": peak,
        }

    def argo_rollback(self, ctl: Controller, objs: list[Obj]) -> dict[str, Any]:
        log(f"argo-rollouts: promote then abort {len(objs)} rollouts (post-promotion analysis)")
        promo = self.argo_wave(ctl, objs, revision=2)
        time.sleep(2)  # let the post-promotion AnalysisRun start
        aborted: dict[Obj, float] = {}

        def abort(o: Obj) -> None:
            self.api.merge_patch(
                f"{ns_path(o.namespace, 'rollouts', ARGO_GROUP, ARGO_VERSION)}/{o.name}/status",
                {"status": {"abort": True}},
            )
            aborted[o] = time.monotonic()

        t_break = time.monotonic()
        self.run_all([lambda o=o: abort(o) for o in objs])
        back = self.wait_flips(objs, t_break, "argo rollback")
        latencies = [f.at - aborted[o] for o, f in back.items() if o in aborted]
        return {
            "n": len(objs),
            "flipped_back": len(back),
            "latency": latencies,
            "promotion": promo,
            "signal": "abort PATCH on rollouts/status returned",
        }

    # -- report -------------------------------------------------------------------

    def report(self, ours: Controller | None, argo: Controller | None) -> str:
        o = ours.results if ours else {}
        a = argo.results if argo else {}
        out = [
            f"# operator benchmark — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            f"machine: {platform.node()}, {os.cpu_count()} CPUs "
            f"({_cpu_model()}), shared with other work; Python {platform.python_version()}",
            f"argo: {a.get('version', 'not run')}; ours: {o.get('settings', {})}",
            f"sizes {self.args.sizes}, wave {self.args.wave}, rollbacks "
            f"{self.args.rollbacks}, steady window {self.args.steady}s, controller-manager "
            f"QPS {self.args.controller_manager_qps or '20 (upstream default)'}",
            "load average (1/5/15 min) at start: {} / at end: {}".format(
                self.load_at_start, " ".join(f"{x:.2f}" for x in os.getloadavg())
            ),
        ]

        def dist(values: list[float] | None) -> tuple[str, str, str]:
            values = values or []
            return (
                fmt(percentile(values, 0.5), " s"),
                fmt(percentile(values, 0.95), " s"),
                str(len(values)),
            )

        rows = []
        ow_p, ow_h, aw = o.get("wave_polling", {}), o.get("wave_webhook", {}), a.get("wave", {})
        for title, key in (
            ("promotion overhead: last new pod Ready -> selector flipped", "overhead"),
            ("trigger -> selector flipped", "trigger_to_flip"),
        ):
            for label, res in (
                ("ours, MLflow polling", ow_p),
                ("ours, MLflow webhook", ow_h),
                ("argo-rollouts (spec change)", aw),
            ):
                p50, p95, n = dist(res.get(key))
                rows.append([title, label, p50, p95, n])
        ours_all = (ow_p.get("overhead") or []) + (ow_h.get("overhead") or [])
        rows.append(
            [
                "promotion overhead p95 ratio (ours both waves / argo)",
                "",
                "",
                ratio(percentile(ours_all, 0.95), percentile(aw.get("overhead") or [], 0.95)),
                "",
            ]
        )
        for label, res in (("ours, polling", ow_p), ("ours, webhook", ow_h)):
            for title, key in (
                ("alias moved -> new Deployment scaled up", "trigger_to_deploy"),
                ("last pod Ready -> smoke call (stub)", "ready_to_smoke"),
                ("smoke call -> selector flipped", "smoke_to_flip"),
            ):
                p50, p95, n = dist(res.get(key))
                rows.append([title, label, p50, p95, n])
            counts = res.get("reconciles_to_flip") or []
            rows.append(
                [
                    "reconciles per object during the wave",
                    label,
                    fmt(percentile(counts, 0.5), ""),
                    fmt(percentile(counts, 0.95), ""),
                    str(len(counts)),
                ]
            )
            p50, p95, n = dist(res.get("reconcile_seconds"))
            rows.append(["mean time in one reconcile, per object", label, p50, p95, n])
        for label, res in (("ours, polling", ow_p), ("ours, webhook", ow_h), ("argo-rollouts", aw)):
            rows.append(
                [
                    f"wave of {res.get('n', 0)} at once: all flipped",
                    label,
                    fmt(res.get("all_flipped_s", math.nan), " s"),
                    "",
                    f"{res.get('flipped', 0)}/{res.get('n', 0)}",
                ]
            )
        out.append(
            table(
                "Promotion (wave of objects promoted at once)",
                ["figure", "who", "p50", "p95", "n"],
                rows,
            )
        )

        rows = []
        orb, arb = o.get("rollback", {}), a.get("rollback", {})
        for label, res in (("ours", orb), ("argo-rollouts", arb)):
            p50, p95, n = dist(res.get("latency"))
            rows.append([label, res.get("signal", ""), p50, p95, n])
        rows.append(
            [
                "ratio p95 (ours / argo)",
                "",
                "",
                ratio(
                    percentile(orb.get("latency") or [], 0.95),
                    percentile(arb.get("latency") or [], 0.95),
                ),
                "",
            ]
        )
        out.append(
            table(
                "Rollback: failure visible in the API -> active selector back",
                ["who", "failure signal", "p50", "p95", "n"],
                rows,
            )
        )

        rows = []
        for size in self.args.sizes:
            os_, as_ = o.get(f"size_{size}", {}), a.get(f"size_{size}", {})
            for title, key, unit, digits in (
                ("time until all Healthy", "healthy_s", " s", 1),
                ("controller CPU while converging (share of a core)", "cpu_during", "", 2),
                ("steady: controller write calls/min", "writes_per_min", "", 1),
                ("steady: controller-resource reads/min", "reads_per_min", "", 0),
                ("steady: Event writes/min (all clients)", "events_per_min", "", 0),
                ("steady: all apiserver writes/min (all clients)", "all_writes_per_min", "", 0),
                ("steady: controller CPU (share of a core)", "cpu", "", 3),
                ("steady: controller RSS", "rss", " MiB", 0),
                ("peak RSS while converging", "rss_peak_during", " MiB", 0),
            ):
                ov, av = os_.get(key, math.nan), as_.get(key, math.nan)
                rows.append(
                    [str(size), title, fmt(ov, unit, digits), fmt(av, unit, digits), ratio(ov, av)]
                )
        out.append(
            table(
                "Scale: objects created at once, then steady state",
                ["objects", "figure", "ours", "argo", "ours/argo"],
                rows,
            )
        )
        for ctl_res, label in ((o, "ours"), (a, "argo")):
            for size in self.args.sizes:
                detail = ctl_res.get(f"size_{size}", {}).get("write_detail")
                if detail:
                    out.append(
                        f"\nsteady-state writes ({label}, {size} objects, whole window): {detail}"
                    )
        return "\n".join(out)


def summarize(what: str, res: dict[str, Any]) -> None:
    """One log line per phase, so a run cut short still leaves its figures in the log."""
    parts = [
        f"{k} p50 {percentile(v, 0.5):.2f}s p95 {percentile(v, 0.95):.2f}s n={len(v)}"
        for k, v in res.items()
        if isinstance(v, list) and v
    ]
    parts += [
        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in res.items()
        if isinstance(v, (int, float))
    ]
    log(f"{what}: " + "; ".join(parts))


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    t = time.monotonic()
    yield
    log(f"{what} took {time.monotonic() - t:.0f}s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100 objects (default)")
    size.add_argument("--full", action="store_true", help="100, then grown to 1,000 objects")
    size.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated growing object counts, e.g. 100,1000",
    )
    p.add_argument("--wave", type=int, default=None, help="objects promoted at once (<= 100)")
    p.add_argument("--rollbacks", type=int, default=30, help="objects rolled back at once")
    p.add_argument("--steady", type=float, default=None, help="steady-state window, seconds")
    p.add_argument("--settle", type=float, default=10.0, help="pause before the window")
    p.add_argument("--healthy-timeout", type=float, default=None)
    p.add_argument("--wave-timeout", type=float, default=180.0)
    p.add_argument(
        "--controller-manager-qps",
        type=int,
        default=None,
        help="kube-controller-manager's client QPS (burst 2x); default: upstream's 20",
    )
    p.add_argument("--skip-argo", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy record ours in steady state")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="leave the workdir (logs) in place")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = [100, 1000] if args.full else [100]
    args.wave = min(args.wave or 100, max(args.sizes))
    args.steady = args.steady or (120.0 if args.full else 60.0)
    args.healthy_timeout = args.healthy_timeout or (900.0 if args.full else 300.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    ours = argo = None
    try:
        with bench.stack:
            bench.setup()
            if not args.skip_ours:
                with timed("tryon-operator scenario"):
                    ours = bench.run_ours()
            if not args.skip_argo:
                with timed("argo-rollouts scenario"):
                    argo = bench.run_argo()
            report = bench.report(ours, argo)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(bench.workdir, ignore_errors=True)
    print(report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"ours": ours.results if ours else None, "argo": argo.results if argo else None},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
