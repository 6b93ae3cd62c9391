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

The smoke check (a local cluster, KEDA, and a ScaledObject that scales a Deployment) is in
``keda_smoke.py``; this module's command line runs it:

    python3 -m hack.localcluster.keda smoke [--real-node] [--workdir DIR]
        [--scale metrics-api] [--scale prometheus]
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
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


def _namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


def objects(host: str, port: int, ca_bundle: bytes) -> list[dict[str, Any]]:
    """Namespace, selector-less Service, its EndpointSlice (what the aggregator resolves with
    ``--enable-aggregator-routing``; written by hand, so no mirroring of v1 Endpoints is needed)
    and the APIService."""
    return [
        _namespace(),
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


def run_kubectl(kubectl: list[str], *args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        [*kubectl, *args], input=input_text, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise KedaError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def apply_objects(
    kubectl: list[str],
    source: Path | list[dict[str, Any]],
    *,
    force_conflicts: bool = False,
    established: bool = False,
) -> None:
    """Server-side apply, as ``tryon-localcluster``, of a list of objects or of the manifests
    under a path; for a path of CRDs, ``established`` also waits (60 s) until they are served."""
    force = ["--force-conflicts"] if force_conflicts else []
    apply = ["apply", "--server-side", *force, "--field-manager=tryon-localcluster", "-f"]
    if not isinstance(source, Path):
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": source})
        run_kubectl(kubectl, *apply, "-", input_text=body)
        return
    path = str(source)
    run_kubectl(kubectl, *apply, path)
    if established:
        run_kubectl(kubectl, "wait", "--for=condition=Established", "--timeout=60s", "-f", path)


def _apiservice_available(kubectl: list[str]) -> bool:
    try:
        service = json.loads(run_kubectl(kubectl, "get", "apiservice", APISERVICE, "-o", "json"))
        run_kubectl(kubectl, "get", "--raw", EXTERNAL_METRICS_PATH, "--request-timeout=3s")
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

    apply_objects(kc, bins / "config" / "crd" / "bases", established=True)

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
        apply_objects(kc, [_namespace()])
        operator.start()
        operator.wait_ready(lambda: http_ok(f"http://127.0.0.1:{health}/readyz"), timeout)
        adapter.start()
        ca_bundle = (certs / "ca.crt").read_bytes()
        apply_objects(kc, objects(host, adapter_port, ca_bundle), force_conflicts=True)

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


def main(argv: list[str] | None = None) -> int:
    """``python3 -m hack.localcluster.keda smoke ...``: the smoke check in ``keda_smoke.py``."""
    from .keda_smoke import main as smoke_main

    return smoke_main(argv)


if __name__ == "__main__":
    sys.exit(main())
