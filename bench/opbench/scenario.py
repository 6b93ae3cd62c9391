"""The scenario both controllers go through: the objects, the harness that starts the control
plane and measures, and the phases' log lines (bench/operator_bench.py)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import SmokeStub, log, percentile, wait_until
from hack.localcluster.cluster import LocalCluster, node_manifest

from .cluster_load import (
    READ_VERBS,
    WRITE_VERBS,
    Api,
    ProcSampler,
    RawWatch,
    Tracker,
    count_calls,
    diff_counts,
    request_counts,
)

REPO = Path(__file__).resolve().parents[2]
PER_NAMESPACE = 20
IMAGE = "registry.example.com/tryon-renderer:1.0.0"
KIND_LABEL = "bench.tryon.dev/kind"
BIN = Path(sys.executable).parent
SCALE_DOWN_DELAY = 30  # Argo's default, used for both
POLL = 0.5  # seconds between the set-up's polls of the API


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


class Scenario:
    """The shared harness: one control plane, its watches and meters, MLflow + S3 (when ours
    runs), and the measurements both controllers get the same way."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tryon-bench-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stack = contextlib.ExitStack()
        self.cluster = LocalCluster(
            self.workdir / "cluster", controller_manager_qps=args.controller_manager_qps
        )
        self.tracker = Tracker()
        self.stub = SmokeStub()
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
        wait_until(
            "bench nodes Ready", lambda: self._nodes_ready() >= nodes + 3, 180, every=POLL
        )
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
            from hack.localcluster.devservers import start_mlflow_server, start_s3_server

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


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    t = time.monotonic()
    yield
    log(f"{what} took {time.monotonic() - t:.0f}s")
