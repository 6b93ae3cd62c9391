"""Our side: tryon-operator as a real process, its TryOnModels, promotion waves by MLflow polling
and by the MLflow webhook, and rollbacks by crash-looping the new colour."""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from typing import Any

import httpx
from tryon_operator.api.vocabulary import (
    DELIVERY_HEADER,
    GROUP,
    PLURAL,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VERSION,
)
from tryon_operator.registry.webhook import sign

from bench.common import log, port_open, wait_until
from hack.localcluster.procs import free_port

from .cluster_load import ProcSampler, ns_path, wait_gc_knows
from .scenario import (
    BIN,
    IMAGE,
    KIND_LABEL,
    POLL,
    REPO,
    SCALE_DOWN_DELAY,
    Controller,
    Obj,
    Scenario,
    layout,
    summarize,
)

WEBHOOK_SECRET = "bench-secret"

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


def send_webhook(port: int, model: str, version: str) -> None:
    """Signed as MLflow signs its webhooks, with the operator's own ``sign``."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "data": {"name": model, "alias": "production", "version": version},
        }
    )
    delivery, stamp = str(uuid.uuid4()), str(int(time.time()))
    resp = httpx.post(
        f"http://127.0.0.1:{port}/webhooks/mlflow",
        content=body,
        timeout=10.0,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(WEBHOOK_SECRET, delivery, stamp, body),
            DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: stamp,
        },
    )
    resp.raise_for_status()


class OursScenario(Scenario):
    def run_ours(self) -> Controller:
        ctl = Controller("tryon-operator", "bop", writes=OUR_RESOURCES, reads=OUR_READS)
        self.kubectl("apply", "-f", str(REPO / "crds" / "tryonmodel.yaml"))
        wait_until(
            "CRD tryonmodels established",
            lambda: self._established(f"{PLURAL}.{GROUP}"),
            60,
            every=POLL,
        )
        # Else the collector's owner look-ups land in the steady window (wait_gc_knows).
        gc_knows = self.pool.submit(wait_gc_knows, self.api, f"{GROUP}/{VERSION}", "TryOnModel")
        webhook_port = free_port()
        self.metrics_port = free_port()
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
        wait_until("operator webhook", lambda: port_open(webhook_port), 60, every=POLL)
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
        log(f"garbage collector resolves TryOnModel owners ({gc_knows.result():.0f}s)")
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
