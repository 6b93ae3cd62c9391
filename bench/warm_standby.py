#!/usr/bin/env python3
"""Warm standby (``rollout.warmStandbyReplicas``): GPU-seconds per promotion and rollback latency.

Two TryOnModels run side by side in one namespace on the local control plane (kwok GPU nodes,
real MLflow + S3, the operator as a real process): ``full`` keeps the whole previous colour for the
rollback window (today's default), ``warm`` keeps ``--standby`` pods. Both serve ``--replicas``
pods with one ``nvidia.com/gpu`` each.

* GPU-seconds: both aliases move at once; a sampler lists the pods every 0.1 s and integrates the
  GPUs held (pods bound to a node, terminating ones included, times the pod's GPU limit) from the
  alias move until the old colour has no pod left. The extra over the serving colour is what the
  promotion costs.
* Rollback latency: both aliases move again; once both flipped (and ``warm`` shrank), a crash loop
  is injected into both new colours in the same instant; latency = injection -> the Service
  selector back on the old colour (polled every 20 ms), and -> the old colour at full size Ready.

    .venv/bin/python bench/warm_standby.py                       # window 20 s, 4 rollback rounds
    .venv/bin/python bench/warm_standby.py --window 60 --rounds 5 --ready-delay 3000ms
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.warm_standby")

from kubernetes import client, config
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from bench.common import SmokeStub, log, wait_until
from hack.localcluster.cluster import Binaries, LocalCluster
from hack.localcluster.devservers import start_mlflow_server, start_s3_server

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench-standby"
FAULT = "sim.tryon.dev/fault"
GPU = "nvidia.com/gpu"


class GpuMeter:
    """Integrates the GPUs held by each TryOnModel's pods over time (sampled)."""

    def __init__(self, core: client.CoreV1Api, names: list[str], every: float = 0.1) -> None:
        self.core, self.names, self.every = core, names, every
        self.held = dict.fromkeys(names, 0.0)  # GPU-seconds
        self.now_gpus = dict.fromkeys(names, 0)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _gpus(self) -> dict[str, int]:
        gpus = dict.fromkeys(self.names, 0)
        for pod in self.core.list_namespaced_pod(NAMESPACE).items:
            name = (pod.metadata.labels or {}).get("app.kubernetes.io/instance")
            if name not in gpus or not pod.spec.node_name:
                continue
            for c in pod.spec.containers:
                gpus[name] += int(((c.resources and c.resources.limits) or {}).get(GPU, 0))
        return gpus

    def _run(self) -> None:
        last = time.monotonic()
        while not self.stop.is_set():
            gpus = self._gpus()
            now = time.monotonic()
            with self.lock:
                for name in gpus:
                    self.held[name] += self.now_gpus[name] * (now - last)
                self.now_gpus = gpus
            last = now
            self.stop.wait(self.every)

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.held)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="tryon-standby-"))
        self.stack = contextlib.ExitStack()
        self.names = ["full", "warm"]

    def setup(self) -> None:
        if self.args.kubeconfig:
            kubeconfig = self.args.kubeconfig
        else:
            local = LocalCluster(self.workdir / "cluster")
            info = local.up()
            self.stack.callback(local.down)
            kubeconfig = info.kubeconfig
        self.api = config.new_client_from_config(config_file=kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        kubectl = str(self._kubectl())
        subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "apply", "--server-side",
                        "--force-conflicts", "-f", str(REPO / "crds" / "tryonmodel.yaml")],
                       check=True, capture_output=True)
        time.sleep(2)
        with contextlib.suppress(client.ApiException):
            self.core.create_namespace(client.V1Namespace(metadata={"name": NAMESPACE}))
        self.stack.callback(lambda: self.core.delete_namespace(NAMESPACE))
        for sub in ("s3", "mlflow"):
            (self.workdir / sub).mkdir()
        s3 = start_s3_server(self.workdir / "s3")
        self.stack.callback(s3.process.stop)
        mlflow = start_mlflow_server(self.workdir / "mlflow", s3)
        self.stack.callback(mlflow.stop)
        from mlflow import MlflowClient

        self.mlflow = MlflowClient(tracking_uri=mlflow.tracking_uri,
                                   registry_uri=mlflow.tracking_uri)
        self.stub = SmokeStub().start()
        env = {**os.environ, "KUBECONFIG": kubeconfig,
               "TRYON_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
               "TRYON_MLFLOW_POLL_SECONDS": "1", "TRYON_RESYNC_SECONDS": "0.5",
               "TRYON_SERVICE_URL_TEMPLATE": self.stub.url,
               "PYTHONPATH": str(REPO / "operator")}
        logf = (self.workdir / "operator.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "tryon_operator", "--namespace", NAMESPACE],
                                env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

        self.stack.callback(stop)
        log(f"operator pid {proc.pid}, log {self.workdir / 'operator.log'}")

    def _kubectl(self) -> Path:
        return Binaries.build_or_find().kubectl

    # -- objects --------------------------------------------------------------------------

    def model(self, name: str) -> str:
        return f"bench-standby-{name}-{os.getpid()}"

    def new_version(self, name: str) -> str:
        mv = self.mlflow.create_model_version(self.model(name), source=f"s3://models/{name}/x")
        return str(mv.version)

    def create(self) -> None:
        a = self.args
        for name in self.names:
            self.mlflow.create_registered_model(self.model(name))
            v = self.new_version(name)
            self.mlflow.set_registered_model_alias(self.model(name), "production", v)
            rollout: dict[str, Any] = {"postPromotionSeconds": a.window,
                                       "scaleDownDelaySeconds": a.window,
                                       "progressDeadlineSeconds": 120}
            if name == "warm":
                rollout["warmStandbyReplicas"] = a.standby
            renderer: dict[str, Any] = {"image": "tryon-renderer:bench", "replicas": a.replicas,
                                        "resources": {"limits": {GPU: 1}}}
            if a.ready_delay:
                renderer["podAnnotations"] = {"sim.tryon.dev/ready-delay": a.ready_delay}
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TryOnModel",
                    "metadata": {"name": name},
                    "spec": {"model": {"registeredModel": self.model(name)},
                             "renderer": renderer, "rollout": rollout}}
            self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        for name in self.names:
            wait_until(f"{name} Healthy", lambda n=name: self.settled(n), 120)

    def status(self, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
        return obj.get("status") or {}

    def settled(self, name: str) -> bool:
        s = self.status(name)
        if s.get("phase") not in ("Healthy", "Degraded") or s.get("rollout") is not None:
            return False
        idle = "green" if s.get("activeColor") == "blue" else "blue"
        serving = self.ready(name, s["activeColor"])
        return self.pods(name, idle) == 0 and serving == self.args.replicas

    def selector(self, name: str) -> str | None:
        svc = self.core.read_namespaced_service(name, NAMESPACE)
        return (svc.spec.selector or {}).get("tryon.dev/color")

    def _pods(self, name: str, color: str) -> list[Any]:
        sel = f"app.kubernetes.io/instance={name},tryon.dev/color={color}"
        return self.core.list_namespaced_pod(NAMESPACE, label_selector=sel).items

    def pods(self, name: str, color: str) -> int:
        return len(self._pods(name, color))

    def ready(self, name: str, color: str) -> int:
        return sum(1 for p in self._pods(name, color) if p.metadata.deletion_timestamp is None
                   and any(c.type == "Ready" and c.status == "True"
                           for c in p.status.conditions or []))

    def move_alias(self) -> dict[str, str]:
        """A new version for both, aliases moved back to back; returns the old colours."""
        old = {n: self.status(n)["activeColor"] for n in self.names}
        versions = {n: self.new_version(n) for n in self.names}
        for n in self.names:
            self.mlflow.set_registered_model_alias(self.model(n), "production", versions[n])
        return old

    # -- measurements ---------------------------------------------------------------------

    def gpu_seconds(self) -> dict[str, dict[str, float]]:
        meter = GpuMeter(self.core, self.names)
        meter.thread.start()
        time.sleep(1.0)
        start, t0 = meter.snapshot(), time.monotonic()
        old = self.move_alias()
        done: dict[str, float] = {}

        def finished() -> bool:
            for n in self.names:
                if n not in done and self.status(n).get("rollout") is None \
                        and self.pods(n, old[n]) == 0:
                    done[n] = time.monotonic()
            return len(done) == len(self.names)

        wait_until("both promotions finished", finished, self.args.window + 180, every=0.1)
        time.sleep(0.3)
        held = meter.snapshot()
        meter.stop.set()
        out = {}
        for n in self.names:
            seconds = done[n] - t0
            total = held[n] - start[n]
            out[n] = {"seconds": seconds, "gpu_seconds": total,
                      "extra": total - self.args.replicas * seconds}
        return out

    def rollback_round(self, order: list[str]) -> dict[str, dict[str, float]]:
        old = self.move_alias()
        a = self.args
        for n in self.names:
            new = "green" if old[n] == "blue" else "blue"
            wait_until(f"{n} flipped", lambda n=n, new=new: self.selector(n) == new, 120)
        wait_until("warm shrunk", lambda: self.apps.read_namespaced_deployment(
            f"warm-{old['warm']}", NAMESPACE).spec.replicas == a.standby, 30)
        wait_until("standby pods settled", lambda: self.pods("warm", old["warm"]) == a.standby
                   and self.ready("warm", old["warm"]) == a.standby, 60)
        victims = {n: [p.metadata.name for p in self._pods(n, "green" if old[n] == "blue"
                                                           else "blue")] for n in self.names}
        injected = time.monotonic()
        for n in order:  # alternated per round: neither object always breaks first
            for pod in victims[n]:
                self.core.patch_namespaced_pod(pod, NAMESPACE,
                                               {"metadata": {"labels": {FAULT: "crashloop"}}})
        back: dict[str, float] = {}
        warm_then: dict[str, int] = {}
        full: dict[str, float] = {}

        def observe() -> bool:
            for n in self.names:
                if n not in back and self.selector(n) == old[n]:
                    back[n] = time.monotonic() - injected
                    warm_then[n] = self.ready(n, old[n])
                if n in back and n not in full and self.ready(n, old[n]) >= a.replicas:
                    full[n] = time.monotonic() - injected
            return len(full) == len(self.names)

        wait_until("both flipped back and full", observe, 120, every=0.02)
        for n in self.names:
            wait_until(f"{n} settled", lambda n=n: self.settled(n), 120)
        return {n: {"selector": back[n], "full": full[n], "warm_then": warm_then[n]}
                for n in self.names}

    def run(self) -> str:
        a = self.args
        self.setup()
        try:
            self.create()
            log("both Healthy; measuring a promotion")
            gpu = self.gpu_seconds()
            rounds = []
            for i in range(a.rounds):
                log(f"rollback round {i + 1}/{a.rounds}")
                order = self.names if i % 2 == 0 else self.names[::-1]
                rounds.append(self.rollback_round(order))
            return self.report(gpu, rounds)
        finally:
            self.stack.close()

    def extrapolate(self, gpu: dict[str, dict[str, float]], name: str, kept: int) -> float:
        """The extra GPU-seconds with a 300 s window: the measured overhead (the preview coming
        up before the flip) plus the pods kept for the window x 300 s."""
        return gpu[name]["extra"] - kept * self.args.window + kept * 300

    def report(self, gpu: dict[str, dict[str, float]], rounds: list[dict[str, Any]]) -> str:
        a = self.args
        lines = [
            f"warm standby bench: {a.replicas} pods x 1 {GPU}, rollback window {a.window}s "
            f"(postPromotionSeconds = scaleDownDelaySeconds), warmStandbyReplicas {a.standby}, "
            f"ready delay {a.ready_delay or '0'}, {os.cpu_count()} CPU(s)",
            "",
            "| per promotion | full standby (default) | warm standby |",
            "|---|---|---|",
            f"| alias moved -> old colour gone | {gpu['full']['seconds']:.1f} s | "
            f"{gpu['warm']['seconds']:.1f} s |",
            f"| GPU-seconds held (both colours) | {gpu['full']['gpu_seconds']:.0f} | "
            f"{gpu['warm']['gpu_seconds']:.0f} |",
            f"| of which above the serving {a.replicas} GPUs | {gpu['full']['extra']:.0f} | "
            f"{gpu['warm']['extra']:.0f} |",
            f"| same with the default 300 s window (extrapolated) | "
            f"{self.extrapolate(gpu, 'full', a.replicas):.0f} | "
            f"{self.extrapolate(gpu, 'warm', a.standby):.0f} |",
            "",
            f"| rollback ({len(rounds)} rounds) | full standby | warm standby |",
            "|---|---|---|",
        ]

        def dist(name: str, key: str) -> str:
            vals = [r[name][key] for r in rounds]
            return (f"median {statistics.median(vals):.2f} s (min {min(vals):.2f}, "
                    f"max {max(vals):.2f})")

        lines += [
            f"| crash injected -> selector back on the old colour | {dist('full', 'selector')} | "
            f"{dist('warm', 'selector')} |",
            f"| Ready pods of the old colour at that moment | "
            f"{sorted({r['full']['warm_then'] for r in rounds})} | "
            f"{sorted({r['warm']['warm_then'] for r in rounds})} |",
            f"| crash injected -> old colour {a.replicas}/{a.replicas} Ready | "
            f"{dist('full', 'full')} | {dist('warm', 'full')} |",
        ]
        return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--standby", type=int, default=1)
    p.add_argument("--window", type=int, default=20, help="postPromotion = scaleDownDelay (s)")
    p.add_argument("--rounds", type=int, default=4, help="rollback rounds")
    p.add_argument("--ready-delay", default="2000ms",
                   help="simulated model loading of a new pod (kwok); '' for none")
    p.add_argument("--kubeconfig", help="a running local cluster instead of a fresh one")
    args = p.parse_args()
    print(Bench(args).run())


if __name__ == "__main__":
    main()
