"""A real, local Kubernetes control plane for tests and the demo.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream programs,
built from Go modules by ``hack/build-tools.sh``; kwok stands in for kubelets so nodes (some
with ``nvidia.com/gpu``) and pod lifecycles, failures included, exist without containers.
Everything binds to 127.0.0.1 on free ports; each ``up`` starts from an empty etcd, so runs
never see each other's state. With ``--real-node`` (what ``make cluster-up`` does) a real kubelet
node, ``real-node-1``, joins next to the kwok nodes (``realnode.py``): the API server then binds to
the node's bridge address instead, so pods reach it as ``kubernetes.default``.

Only the standard library, ``openssl`` and the built binaries are used, so ``make cluster-up``
works before any Python package is installed.

    python3 -m hack.localcluster.cluster up [--state-dir .cluster] [--real-node]
    python3 -m hack.localcluster.cluster status | down     # from the repository root
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import nodeconfig, realnode
from . import pki as pki_files
from .procs import free_port, http_ok, pid_alive, wait_until

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".cluster"
KWOK_NODE_LABEL = "tryon.dev/kwok-node"
SERVICE_CIDR = "10.96.0.0/16"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


class ClusterError(RuntimeError):
    """The control plane could not be started or stopped; the message says which part and why."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the programs that make up the cluster."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    node: realnode.NodeBinaries | None = None

    @classmethod
    def build_or_find(cls, real_node: bool = False) -> Binaries:
        """Runs the (cached) Go build and returns where each program landed."""
        tools = ["etcd", "kwok", "kubernetes"] + (
            ["node", "containerd", "coredns"] if real_node else []
        )
        out = subprocess.run(
            ["bash", str(REPO_ROOT / "hack" / "build-tools.sh"), *tools],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        ).stdout.split()
        kube_dir, etcd_dir, kwok_dir = Path(out[0]), Path(out[1]), Path(out[2])
        node = None
        if real_node:
            node_dir, containerd_dir, coredns_dir = Path(out[4]), Path(out[5]), Path(out[6])
            node = realnode.NodeBinaries(
                kubelet=node_dir / "kubelet",
                kube_proxy=node_dir / "kube-proxy",
                gpustub=node_dir / "gpustub",
                pause=node_dir / "pause",
                containerd_dir=containerd_dir,
                coredns=coredns_dir / "coredns",
            )
        return cls(
            etcd=etcd_dir / "etcd",
            kube_apiserver=kube_dir / "kube-apiserver",
            kube_controller_manager=kube_dir / "kube-controller-manager",
            kube_scheduler=kube_dir / "kube-scheduler",
            kubectl=kube_dir / "kubectl",
            kwok=kwok_dir / "kwok",
            node=node,
        )


@dataclass(frozen=True)
class ClusterInfo:
    """What a running cluster looks like from outside: written to ``<state>/cluster.json``."""

    state_dir: str
    kubeconfig: str
    server: str
    kubectl: str
    pids: dict[str, int]
    real_node: bool = False

    @classmethod
    def load(cls, state_dir: Path) -> ClusterInfo | None:
        path = state_dir / "cluster.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        Path(self.state_dir, "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    def alive(self) -> bool:
        pids = dict(self.pids)
        if self.real_node:
            record = realnode.HostRecord.load()
            if record is None or record.state_dir != self.state_dir:
                return False
            pids |= {f"node-{name}": pid for name, pid in record.pids.items()}
        return bool(pids) and all(pid_alive(pid) for pid in pids.values())


# --- small helpers ---


def _wait_until(what: str, check: Callable[[], bool], timeout: float, logs: Path | None) -> None:
    wait_until(what, check, timeout, logs, error=ClusterError)


def _https_ok(url: str, pki: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- nodes ---


def node_manifest(name: str, gpus: int) -> dict[str, object]:
    """A kwok-managed node; GPU nodes advertise ``nvidia.com/gpu`` like the NVIDIA device plugin."""
    labels = {
        KWOK_NODE_LABEL: "true",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if gpus:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": GPU_PRODUCT,
            "nvidia.com/gpu.count": str(gpus),
        }
        resources["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        },
        "spec": {},
        "status": {"allocatable": resources, "capacity": resources},
    }


DEFAULT_NODES: tuple[tuple[str, int], ...] = (
    ("gpu-node-1", 4),
    ("gpu-node-2", 4),
    ("cpu-node-1", 0),
)


# --- the cluster ---


AUDIT_LOG = "kube-apiserver-audit.log"
# Writes to what the operator owns or touches, at Metadata level (no bodies); node heartbeats and
# pod status churn from kwok and the kubelet are left out.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: None
    namespaces: [kube-node-lease, kube-system]
  - level: Metadata
    resources:
      - group: ""
        resources: [services, events, pods]
      - group: apps
        resources: [deployments, deployments/scale]
      - group: autoscaling
        resources: [horizontalpodautoscalers]
      - group: tryon.dev
      - group: coordination.k8s.io
        resources: [leases]
  - level: None
"""


class LocalCluster:
    """Starts and stops the control plane whose files live in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        real_node: bool = False,
        controller_manager_qps: int | None = None,
        hpa_sync_seconds: int = 5,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.real_node = real_node
        # The HPA controller's period: 5 s keeps tests short; users' clusters keep upstream's 15 s,
        # and bench/autoscale.py measures with that.
        self.hpa_sync_seconds = hpa_sync_seconds
        # None keeps the upstream client limit (20 QPS, burst 30), which bounds how fast the
        # ReplicaSet controller creates pods; benchmarks raise it to take it out of the figure.
        self.controller_manager_qps = controller_manager_qps
        self.pki = self.state_dir / "pki"
        self.logs = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "kubeconfig"

    def up(self, timeout: float = 180.0) -> ClusterInfo:
        """Starts a fresh cluster (or returns the one already running here) with nodes Ready."""
        existing = ClusterInfo.load(self.state_dir)
        if existing is not None and existing.alive():
            return existing
        self.down()
        binaries = Binaries.build_or_find(self.real_node)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        pki_files.make_cluster_pki(self.pki, nodeconfig.NODE_IP)
        pids: dict[str, int] = {}
        info = ClusterInfo(
            str(self.state_dir),
            str(self.kubeconfig),
            "",
            str(binaries.kubectl),
            pids,
            self.real_node,
        )
        try:
            if self.real_node:
                realnode.prepare_host(self.state_dir)
            etcd_url = self._start_etcd(binaries, pids, timeout)
            server = self._start_apiserver(binaries, etcd_url, pids, timeout)
            info = ClusterInfo(
                str(self.state_dir),
                str(self.kubeconfig),
                server,
                str(binaries.kubectl),
                pids,
                self.real_node,
            )
            info.save()
            pki_files.write_kubeconfig(self.kubeconfig, server, self.pki)
            self._start_controllers(binaries, pids)
            self._add_nodes(binaries, timeout)
            if binaries.node is not None:
                node = realnode.RealNode(
                    self.state_dir, self.pki, server, self.kubectl, binaries.node
                )
                node.up(timeout)
        except BaseException:
            info.save()
            self.down()
            raise
        info.save()
        return info

    def down(self) -> None:
        """Stops every process this state dir started; nothing is left running."""
        record = realnode.HostRecord.load()
        if record is not None and record.state_dir == str(self.state_dir):
            # The node first, in order (kubelet before containerd), while the API still answers.
            realnode.teardown()
        info = ClusterInfo.load(self.state_dir)
        if info is None:
            return
        for pid in info.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(pid_alive(p) for p in info.pids.values()):
            time.sleep(0.1)
        for pid in info.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        (self.state_dir / "cluster.json").unlink(missing_ok=True)

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of each component, for the notes and the status command."""
        info = ClusterInfo.load(self.state_dir)
        usage: dict[str, float] = {}
        for name, pid in (info.pids if info else {}).items():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        usage[name] = int(line.split()[1]) / 1024
            except FileNotFoundError:
                usage[name] = 0.0
        return usage

    # -- components --

    def _spawn(self, name: str, argv: Sequence[str], pids: dict[str, int]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.state_dir,
        )
        pids[name] = proc.pid

    def _start_etcd(self, binaries: Binaries, pids: dict[str, int], timeout: float) -> str:
        data = self.state_dir / "etcd-data"
        subprocess.run(["rm", "-rf", str(data)], check=True)
        client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
        self._spawn(
            "etcd",
            [
                str(binaries.etcd),
                "--name=local",
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            pids,
        )
        _wait_until("etcd", lambda: http_ok(client + "/health"), timeout, self.logs / "etcd.log")
        return client

    def _start_apiserver(
        self, binaries: Binaries, etcd_url: str, pids: dict[str, int], timeout: float
    ) -> str:
        port = free_port()
        # With a real node, pods reach the API server through the kubernetes Service, whose
        # endpoint (kept by the lease reconciler) must be an address they can route to.
        host = nodeconfig.NODE_IP if self.real_node else "127.0.0.1"
        server = f"https://{host}:{port}"
        pki = self.pki
        node_flags = [
            "--endpoint-reconciler-type=lease",
            # real-node-1 is not in any resolver: reach kubelets by their InternalIP.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
        ]
        audit_policy = self.state_dir / "audit-policy.yaml"
        audit_policy.write_text(AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                # Who wrote what (user agent included): the HA tests prove a standby writes nothing.
                f"--audit-policy-file={audit_policy}",
                f"--audit-log-path={self.logs / AUDIT_LOG}",
                "--audit-log-maxsize=200",
                "--audit-log-maxbackup=1",
                f"--etcd-servers={etcd_url}",
                f"--bind-address={host}",
                f"--advertise-address={host}",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                "--enable-priority-and-fairness=false",
                "--event-ttl=1h",
                # The aggregation layer, for extension API servers such as KEDA's metrics adapter
                # (keda.py); routing to the APIService's endpoints, not its ClusterIP, because no
                # kube-proxy runs on the host without the real node.
                f"--requestheader-client-ca-file={pki / (pki_files.FRONT_PROXY_CA + '.crt')}",
                f"--requestheader-allowed-names={pki_files.FRONT_PROXY_CLIENT}",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-username-headers=X-Remote-User",
                f"--proxy-client-cert-file={pki / (pki_files.FRONT_PROXY_CLIENT + '.crt')}",
                f"--proxy-client-key-file={pki / (pki_files.FRONT_PROXY_CLIENT + '.key')}",
                "--enable-aggregator-routing=true",
                *(node_flags if self.real_node else ["--endpoint-reconciler-type=none"]),
            ],
            pids,
        )
        _wait_until(
            "kube-apiserver /readyz",
            lambda: _https_ok(server + "/readyz", pki),
            timeout,
            self.logs / "kube-apiserver.log",
        )
        return server

    def _start_controllers(self, binaries: Binaries, pids: dict[str, int]) -> None:
        kc = str(self.kubeconfig)
        common = [
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ]
        self._spawn(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                *common,
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--controllers=*",
                "--use-service-account-credentials=false",
                f"--horizontal-pod-autoscaler-sync-period={self.hpa_sync_seconds}s",
                *self._controller_manager_rate_flags(),
            ],
            pids,
        )
        self._spawn(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                *common,
                f"--secure-port={free_port()}",
            ],
            pids,
        )
        self._spawn(
            "kwok",
            [
                str(binaries.kwok),
                f"--kubeconfig={kc}",
                f"--config={HERE / 'kwok-stages.yaml'}",
                f"--manage-nodes-with-label-selector={KWOK_NODE_LABEL}=true",
                f"--server-address=127.0.0.1:{free_port()}",
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.1/16",
                "--node-lease-duration-seconds=40",
            ],
            pids,
        )

    def _controller_manager_rate_flags(self) -> list[str]:
        qps = self.controller_manager_qps
        if qps is None:
            return []
        return [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"]

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        info = ClusterInfo.load(self.state_dir)
        kubectl = info.kubectl if info else "kubectl"
        result = subprocess.run(
            [kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _add_nodes(self, binaries: Binaries, timeout: float) -> None:
        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": [node_manifest(n, g) for n, g in DEFAULT_NODES],
        }
        # The default ServiceAccount appears a moment after each namespace; pods need it.
        _wait_until(
            "the default ServiceAccount",
            lambda: self._has_default_sa(),
            timeout,
            self.logs / "kube-controller-manager.log",
        )
        self.kubectl("apply", "-f", "-", input_text=json.dumps(manifests))

        def nodes_ready() -> bool:
            nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
            ready = [
                n
                for n in nodes
                for c in n["status"].get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ]
            return len(ready) == len(DEFAULT_NODES)

        _wait_until("kwok nodes Ready", nodes_ready, timeout, self.logs / "kwok.log")

    def kubectl_reachable(self) -> bool:
        """Whether an API server answers for this state dir (false once ``down`` has run)."""
        try:
            self.kubectl("get", "--raw", "/readyz", "--request-timeout=3s")
            return True
        except (ClusterError, OSError):
            return False

    def _has_default_sa(self) -> bool:
        try:
            self.kubectl("get", "serviceaccount", "default", "-n", "default")
            return True
        except ClusterError:
            return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="also start real-node-1 (kubelet + containerd; root, one per host)",
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.state_dir, real_node=args.real_node)
    if args.command == "up":
        started = time.monotonic()
        try:
            info = cluster.up()
        except (ClusterError, realnode.NodeError, subprocess.CalledProcessError) as err:
            print(f"cluster-up failed: {err}", file=sys.stderr)
            return 1
        print(f"control plane up in {time.monotonic() - started:.1f}s at {info.server}")
        print(f"export KUBECONFIG={info.kubeconfig}")
        print(f"kubectl: {info.kubectl}")
    elif args.command == "down":
        cluster.down()
        print("control plane stopped")
    else:
        info = ClusterInfo.load(cluster.state_dir)
        if info is None or not info.alive():
            print("control plane: not running")
            return 1
        print(f"control plane: running at {info.server} (KUBECONFIG={info.kubeconfig})")
        for name, mib in cluster.memory_mib().items():
            print(f"  {name:<25} {mib:8.1f} MiB RSS")
        print(f"  {'total':<25} {sum(cluster.memory_mib().values()):8.1f} MiB RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
