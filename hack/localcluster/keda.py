"""KEDA next to the local cluster: its operator and its metrics API server ("adapter") as host
processes, the adapter registered as the APIService ``v1beta1.external.metrics.k8s.io``, so a
ScaledObject makes the cluster's own HPA controller scale a Deployment, as in a real install.

Built from KEDA's Go module (``hack/build-tools.sh keda``, which also keeps the module's
``config/`` with the CRDs). Both programs run with the admin kubeconfig, in namespace ``keda``;
the operator serves its metrics, health probes and the operator<->adapter gRPC on loopback, with
mTLS from a throwaway CA (``<workdir>/certs``: ``ca.crt``, ``tls.crt``, ``tls.key``, the layout
KEDA's ``--cert-dir`` expects; cert rotation, which would write a Secret and patch the
APIService, is off). The adapter listens where the API server can reach it through the
aggregation layer: a Service without selector in ``keda`` and an EndpointSlice pointing at the
adapter's host address (the node bridge, 10.85.0.1, when it exists); the APIService trusts
the adapter's certificate through its caBundle.

    python3 -m hack.localcluster.keda smoke [--real-node] [--workdir DIR]
        [--scale metrics-api] [--scale prometheus]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import nodeconfig
from . import pki as pki_files
from .devservers import ManagedProcess
from .procs import free_port, free_ports, http_ok, wait_until

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
OPERATOR_SERVICE = "keda-operator"
APISERVICE = "v1beta1.external.metrics.k8s.io"
EXTERNAL_METRICS_PATH = "/apis/external.metrics.k8s.io/v1beta1"
START_TIMEOUT_S = 120.0


class KedaError(RuntimeError):
    """KEDA could not be started; the message says which part and why (with its log tail)."""


def binary_dir() -> Path:
    """Runs the (cached) build and returns the dir with ``keda``, ``keda-adapter``, ``config/``."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh"), "keda"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.split()
    return next(Path(line) for line in out if Path(line).name.startswith("keda-"))


def _can_bind(host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError:
            return False
    return True


def adapter_host() -> str:
    """The node bridge address when this host has it (a real node is up), else the host's first
    global IPv4 address: an EndpointSlice may not point at loopback."""
    if _can_bind(nodeconfig.NODE_IP):
        return nodeconfig.NODE_IP
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    raise KedaError("no non-loopback IPv4 address on this host for the KEDA adapter")


def make_certs(certs: Path, host: str) -> None:
    """KEDA's CA and the one key pair both programs use: the gRPC server and client certificate
    (mTLS on loopback) and the adapter's serving certificate (the name the aggregator checks is
    ``<service>.<namespace>.svc``)."""
    names = [
        f"{svc}.{NAMESPACE}.svc{suffix}"
        for svc in (SERVICE, OPERATOR_SERVICE)
        for suffix in ("", ".cluster.local")
    ]
    sans = ",".join([f"IP:127.0.0.1,IP:{host}", "DNS:localhost", *(f"DNS:{n}" for n in names)])
    ext = f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n"
    done = certs / "tls.ext"
    if (certs / "tls.crt").exists() and done.exists() and done.read_text() == ext:
        return
    pki_files.make_ca(certs, "ca", "tryon-local-keda-ca")
    done.write_text(ext)
    pki_files.issue_cert(certs, "tls", f"/O=KEDAORG/CN={SERVICE}", "tls.ext")


def objects(host: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Namespace, selector-less Service, its EndpointSlice (what the aggregator resolves with
    ``--enable-aggregator-routing``; written by hand, so no mirroring of v1 Endpoints is needed)
    and the APIService."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-host",
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "localcluster.tryon.dev",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "caBundle": base64.b64encode(ca_bundle).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


@dataclass
class Keda:
    """The running operator and adapter; ``stop`` also unregisters the APIService."""

    operator: ManagedProcess
    adapter: ManagedProcess
    kubectl: list[str]
    adapter_url: str
    started_s: float = 0.0
    stopped: bool = field(default=False, init=False)

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of the two programs."""
        usage: dict[str, float] = {}
        for process in (self.operator, self.adapter):
            if process.proc is None:
                continue
            status = Path(f"/proc/{process.proc.pid}/status")
            for line in status.read_text().splitlines() if status.exists() else []:
                if line.startswith("VmRSS:"):
                    usage[process.name] = int(line.split()[1]) / 1024
        return usage

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        # An unavailable aggregated API breaks discovery (and namespace deletion) for everyone
        # else on the cluster, so it goes first, while the API server may still answer.
        subprocess.run(
            [
                *self.kubectl,
                "delete",
                "apiservice",
                APISERVICE,
                "--ignore-not-found",
                "--wait=false",
                "--request-timeout=5s",
            ],
            capture_output=True,
            check=False,
        )
        self.adapter.stop()
        self.operator.stop()


def _kubectl(kubectl: list[str], *args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        [*kubectl, *args], input=input_text, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise KedaError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _apiservice_available(kubectl: list[str]) -> bool:
    try:
        service = json.loads(_kubectl(kubectl, "get", "apiservice", APISERVICE, "-o", "json"))
        _kubectl(kubectl, "get", "--raw", EXTERNAL_METRICS_PATH, "--request-timeout=3s")
    except (KedaError, json.JSONDecodeError):
        return False
    conditions = service.get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def start_keda(
    workdir: Path,
    kubeconfig: Path,
    kubectl: str | Path = "kubectl",
    host: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Keda:
    """CRDs, operator, adapter and APIService; returns once the API server serves
    ``external.metrics.k8s.io/v1beta1`` through the adapter (APIService Available)."""
    started = time.monotonic()
    bins = binary_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    host = host or adapter_host()
    certs = workdir / "certs"
    make_certs(certs, host)
    (workdir / "custom-ca").mkdir(exist_ok=True)  # --ca-dir: no extra CAs for scalers
    kc = [str(kubectl), f"--kubeconfig={kubeconfig}"]

    _kubectl(
        kc,
        "apply",
        "--server-side",
        "--field-manager=tryon-localcluster",
        "-f",
        str(bins / "config" / "crd" / "bases"),
    )
    _kubectl(
        kc,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        str(bins / "config" / "crd" / "bases"),
    )

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": "",  # all namespaces
        "POD_NAMESPACE": NAMESPACE,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
    }
    metrics, health, grpc, adapter_metrics = free_ports(4)
    adapter_port = free_port(host)
    grpc_address = f"127.0.0.1:{grpc}"
    operator = ManagedProcess(
        "keda-operator",
        [
            str(bins / "keda"),
            "--leader-elect=false",
            "--zap-log-level=info",
            "--zap-encoder=console",
            f"--metrics-bind-address=127.0.0.1:{metrics}",
            f"--health-probe-bind-address=127.0.0.1:{health}",
            f"--metrics-service-bind-address={grpc_address}",
            f"--cert-dir={certs}",
            "--enable-cert-rotation=false",
            f"--ca-dir={workdir / 'custom-ca'}",
        ],
        env,
        workdir / "keda-operator.log",
        cwd=workdir,
    )
    adapter = ManagedProcess(
        "keda-adapter",
        [
            str(bins / "keda-adapter"),
            f"--bind-address={host}",
            f"--secure-port={adapter_port}",
            f"--cert-dir={certs}",
            f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            f"--client-ca-file={certs / 'ca.crt'}",
            f"--metrics-service-address={grpc_address}",
            # The adapter's own /metrics listens on all addresses: only the port can be chosen.
            f"--port={adapter_metrics}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--zap-log-level=info",
            "--zap-encoder=console",
        ],
        env,
        workdir / "keda-adapter.log",
        cwd=workdir,
    )
    keda = Keda(operator, adapter, kc, f"https://{host}:{adapter_port}")
    try:
        # The namespace first: the operator's Secret informer lists in it.
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        _kubectl(
            kc,
            "apply",
            "--server-side",
            "--field-manager=tryon-localcluster",
            "-f",
            "-",
            input_text=json.dumps(namespace),
        )
        operator.start()
        operator.wait_ready(lambda: http_ok(f"http://127.0.0.1:{health}/readyz"), timeout)
        adapter.start()
        ca_bundle = (certs / "ca.crt").read_bytes()
        items = objects(host, adapter_port, ca_bundle)
        _kubectl(
            kc,
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=tryon-localcluster",
            "-f",
            "-",
            input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )

        def available() -> bool:
            if not adapter.running():
                raise KedaError(f"keda-adapter exited\n{adapter.log_tail()}")
            return _apiservice_available(kc)

        wait_until(
            f"APIService {APISERVICE} Available",
            available,
            timeout,
            adapter.log_path,
            error=KedaError,
        )
    except BaseException:
        keda.stop()
        raise
    keda.started_s = time.monotonic() - started
    return keda


# --- smoke: a local cluster, KEDA, and (with --scale) a ScaledObject that scales a Deployment ---


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
    spec = json.loads(_kubectl(kc, "get", "deployment", name, "-o", "json"))
    return int(spec["spec"]["replicas"]), int(spec.get("status", {}).get("readyReplicas", 0))


def _apply(kc: list[str], items: list[dict[str, Any]]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    _kubectl(kc, "apply", "--server-side", "-f", "-", input_text=body)


def _show_metric(kc: list[str], name: str) -> None:
    hpa = json.loads(_kubectl(kc, "get", "hpa", f"keda-hpa-{name}", "-o", "json"))
    metric = hpa["spec"]["metrics"][0]["external"]["metric"]["name"]
    current = hpa.get("status", {}).get("currentMetrics") or [{}]
    path = f"{EXTERNAL_METRICS_PATH}/namespaces/default/{metric}"
    raw = _kubectl(kc, "get", "--raw", f"{path}?labelSelector=scaledobject.keda.sh%2Fname%3D{name}")
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
            from prometheus import start_prometheus

            prom = start_prometheus(workdir / "prometheus", kubeconfig)
            stack.callback(prom.stop)

            def set_value(value: int) -> list[dict[str, Any]]:
                return scale_objects(name, prometheus_trigger(prom.url, value))

        for step, (value, want) in enumerate(((6, 3), (2, 1))):
            began = time.monotonic()
            deployment, scaled_object = set_value(value)
            # The Deployment once: then its replicas belong to the HPA (the scale subresource).
            _apply(kc, [deployment, scaled_object] if step == 0 else [scaled_object])

            def reached(want: int = want) -> bool:
                return _replicas(kc, name) == (want, want)

            wait_until(f"{want} ready replicas of {name}", reached, 120, None, error=KedaError)
            print(
                f"{trigger} metric {value} -> {want} ready replicas in "
                f"{time.monotonic() - began:.1f}s"
            )
            _show_metric(kc, name)
        _kubectl(kc, "delete", "scaledobject,deployment", name, "--wait=false")


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
        print(_kubectl(kc, "get", "apiservice", APISERVICE).rstrip())
        print(_kubectl(kc, "get", "--raw", EXTERNAL_METRICS_PATH))
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
