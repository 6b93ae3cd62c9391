"""Argo Rollouts' blue/green controller, built from its Go module, doing what ours does: the same
objects as Rollouts with active and preview Services, a wave of spec changes, aborts after
promotion."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import log, wait_until
from hack.localcluster.procs import free_port

from .cluster_load import ProcSampler, ns_path, wait_gc_knows
from .scenario import (
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

ARGO_GROUP, ARGO_VERSION = "argoproj.io", "v1alpha1"

# What Argo writes and reads (see OUR_RESOURCES in ours.py for what is counted and why).
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


class ArgoScenario(Scenario):
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
                f"CRD {crd} established",
                lambda c=crd: self._established(f"{c}.{ARGO_GROUP}"),
                60,
                every=POLL,
            )
        took = wait_gc_knows(self.api, f"{ARGO_GROUP}/{ARGO_VERSION}", "Rollout")
        log(f"garbage collector resolves Rollout owners ({took:.0f}s)")
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
                f"--metricsPort={free_port()}",
                f"--healthzPort={free_port()}",
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
