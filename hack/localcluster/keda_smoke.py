"""The KEDA smoke check: a local cluster, KEDA beside it (``keda.py``), and, with ``--scale``, a
ScaledObject per trigger that scales a kwok Deployment through the cluster's own HPA controller.

Standard library only, like the rest of ``hack/localcluster``:

    python3 -m hack.localcluster.keda smoke [--real-node] [--workdir DIR]
        [--scale metrics-api] [--scale prometheus]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .keda import (
    APISERVICE,
    EXTERNAL_METRICS_PATH,
    Keda,
    KedaError,
    apply_objects,
    run_kubectl,
    start_keda,
)
from .procs import wait_until
from .prometheus import start_prometheus


class _MetricHandler(http.server.BaseHTTPRequestHandler):
    value: int = 0

    def do_GET(self) -> None:
        body = json.dumps({"value": type(self).value}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _metric_server() -> Iterator[tuple[str, type[_MetricHandler]]]:
    """An HTTP JSON endpoint ``{"value": N}`` for KEDA's ``metrics-api`` trigger; the caller sets
    N through the returned handler class."""
    handler = type("Handler", (_MetricHandler,), {"value": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metric", handler
    finally:
        server.shutdown()
        server.server_close()


def scale_objects(name: str, trigger: dict[str, Any]) -> list[dict[str, Any]]:
    """A Deployment on the kwok nodes and a ScaledObject over it with ``trigger``."""
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"type": "kwok"},
                    "containers": [{"name": "app", "image": "registry.invalid/keda-smoke:1"}],
                },
            },
        },
    }
    scaled_object = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": 5,
            "minReplicaCount": 1,
            "maxReplicaCount": 6,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}
                }
            },
            "triggers": [trigger],
        },
    }
    return [deployment, scaled_object]


def metrics_api_trigger(url: str) -> dict[str, Any]:
    """replicas = ceil(value / 2), the value read from ``url``'s JSON ``{"value": N}``."""
    return {
        "type": "metrics-api",
        "metricType": "AverageValue",
        "metadata": {"url": url, "valueLocation": "value", "targetValue": "2"},
    }


def prometheus_trigger(server: str, value: int) -> dict[str, Any]:
    """replicas = ceil(value / 2), the value a real Prometheus computes (``vector(N)``)."""
    return {
        "type": "prometheus",
        "metricType": "AverageValue",
        "metadata": {"serverAddress": server, "query": f"vector({value})", "threshold": "2"},
    }


def _replicas(kc: list[str], name: str) -> tuple[int, int]:
    spec = json.loads(run_kubectl(kc, "get", "deployment", name, "-o", "json"))
    return int(spec["spec"]["replicas"]), int(spec.get("status", {}).get("readyReplicas", 0))


def _show_metric(kc: list[str], name: str) -> None:
    hpa = json.loads(run_kubectl(kc, "get", "hpa", f"keda-hpa-{name}", "-o", "json"))
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    current = hpa.get("status", {}).get("currentMetrics") or [{}]
    path = f"{EXTERNAL_METRICS_PATH}/namespaces/default/{metric}"
    selector = f"labelSelector=scaledobject.keda.sh%2Fname%3D{name}"
    raw = run_kubectl(kc, "get", "--raw", f"{path}?{selector}")
    status = hpa.get("status", {})
    print(
        f"  HPA keda-hpa-{name}: desiredReplicas={status.get('desiredReplicas')}, "
        f"currentMetrics (at its last sync)={json.dumps(current[0].get('external'))}"
    )
    print(f"  GET {path}: value={json.loads(raw)['items'][0]['value']}")


def prove_scaling(kc: list[str], trigger: str, workdir: Path, kubeconfig: Path) -> None:
    """Metric 6 -> 3 replicas, then 2 -> 1, through KEDA and the cluster's HPA controller."""
    name = f"keda-smoke-{trigger}"
    with contextlib.ExitStack() as stack:
        if trigger == "metrics-api":
            url, handler = stack.enter_context(_metric_server())

            def set_value(value: int) -> list[dict[str, Any]]:
                handler.value = value
                return scale_objects(name, metrics_api_trigger(url))
        else:
            prom = start_prometheus(workdir / "prometheus", kubeconfig)
            stack.callback(prom.stop)

            def set_value(value: int) -> list[dict[str, Any]]:
                return scale_objects(name, prometheus_trigger(prom.url, value))

        for step, (value, want) in enumerate(((6, 3), (2, 1))):
            began = time.monotonic()
            deployment, scaled_object = set_value(value)
            # The Deployment once: then its replicas belong to the HPA (the scale subresource).
            apply_objects(kc, [deployment, scaled_object] if step == 0 else [scaled_object])

            def reached(want: int = want) -> bool:
                return _replicas(kc, name) == (want, want)

            wait_until(f"{want} ready replicas of {name}", reached, 120, None, error=KedaError)
            print(
                f"{trigger} metric {value} -> {want} ready replicas in "
                f"{time.monotonic() - began:.1f}s"
            )
            _show_metric(kc, name)
        run_kubectl(kc, "delete", "scaledobject,deployment", name, "--wait=false")


def smoke(workdir: Path, real_node: bool, triggers: list[str]) -> int:
    from .cluster import LocalCluster  # here: cluster.py imports the real-node modules

    cluster = LocalCluster(workdir / "cluster", real_node=real_node)
    keda: Keda | None = None
    try:
        began = time.monotonic()
        info = cluster.up()
        print(f"cluster up in {time.monotonic() - began:.1f}s at {info.server}")
        keda = start_keda(workdir / "keda", Path(info.kubeconfig), info.kubectl)
        print(
            f"KEDA up, APIService {APISERVICE} Available in {keda.started_s:.1f}s "
            f"(adapter at {keda.adapter_url})"
        )
        kc = keda.kubectl
        print(run_kubectl(kc, "get", "apiservice", APISERVICE).rstrip())
        print(run_kubectl(kc, "get", "--raw", EXTERNAL_METRICS_PATH))
        for trigger in triggers:
            prove_scaling(kc, trigger, workdir, Path(info.kubeconfig))
        rss = ", ".join(f"{n} {m:.0f} MiB" for n, m in keda.memory_mib().items())
        print(f"RSS: {rss}")
        return 0
    except (KedaError, subprocess.CalledProcessError, RuntimeError) as err:
        print(f"keda smoke failed: {err}", file=sys.stderr)
        return 1
    finally:
        if keda is not None:
            keda.stop()
        cluster.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["smoke"])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--real-node", action="store_true", help="also start real-node-1 (root)")
    parser.add_argument(
        "--scale",
        action="append",
        default=[],
        choices=["metrics-api", "prometheus"],
        help="also scale a kwok Deployment through KEDA's HPA with this trigger (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tryon-keda-"))
    try:
        return smoke(workdir, args.real_node, args.scale)
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"work dir: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
