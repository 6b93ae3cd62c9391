"""End-to-end fixtures: the local cluster with ``real-node-1``, MLflow + S3, the chart installed.

Everything here is real: containers under containerd, probes fired by the kubelet, packets through
kube-proxy's nftables rules, names from CoreDNS, the operator in a pod under the chart's RBAC.
These tests run only under ``make e2e`` (root, the images from ``make images``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hack.localcluster import incluster, registry
from hack.localcluster.cluster import LocalCluster
from hack.localcluster.incluster import Models
from hack.localcluster.prometheus import Prometheus, start_prometheus
from tests.support.cluster import wait_for as support_wait_for

TAG = incluster.image_tag()


@dataclass
class RealCluster:
    """The running cluster as the tests use it: kubectl, helm and the dev backends."""

    local: LocalCluster
    kubeconfig: str
    kubectl_path: str
    helm: str
    backends: incluster.DevBackends

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.local.kubectl(*args, input_text=input_text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        return dict(json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json")))

    def status(self, name: str, namespace: str) -> dict[str, Any]:
        return incluster.tryonmodel_status(self.kubectl, name, namespace)

    def events(self, namespace: str, reason: str) -> list[dict[str, Any]]:
        items = json.loads(self.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
        return [e for e in items if e.get("reason") == reason]


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Polls with a deadline (the suite-wide helper, with the description first)."""
    return support_wait_for(check, timeout, what, interval)


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    workdir = tmp_path_factory.mktemp("e2e")
    local = LocalCluster(workdir / "cluster", real_node=True)
    info = local.up()
    try:
        helm = incluster.helm_binary()
        backends = incluster.start_dev_backends(workdir, local.kubectl)
        try:
            values = incluster.operator_values(backends.tracking_uri_in_cluster, TAG)
            incluster.apply(local.kubectl, *incluster.operator_namespace())
            incluster.helm_install_operator(helm, info.kubeconfig, values, workdir)
            yield RealCluster(local, info.kubeconfig, info.kubectl, helm, backends)
        finally:
            backends.stop()
    finally:
        local.down()


@pytest.fixture(scope="session")
def prometheus(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """A real Prometheus discovering the cluster's pods through its kubeconfig."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), Path(real_cluster.kubeconfig))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def registry_env(real_cluster: RealCluster) -> dict[str, str]:
    """What a host-side ML engineer's tools need to register models in the dev MLflow."""
    env = dict(real_cluster.backends.mlflow.env)
    os.environ.update(env)
    return env


@pytest.fixture
def models(registry_env: dict[str, str], request: pytest.FixtureRequest) -> Models:
    return Models(f"e2e-{uuid.uuid4().hex[:8]}", registry_env["MLFLOW_TRACKING_URI"])


@pytest.fixture
def shop(real_cluster: RealCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace for one test that enforces Pod Security "restricted", with the S3 Secret the
    renderer reads and the registry pull secret; pods printed at the end."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    incluster.apply(
        real_cluster.kubectl, *incluster.workload_namespace(name, real_cluster.backends.s3)
    )
    wait_for(
        "default ServiceAccount",
        lambda: real_cluster.kubectl("get", "sa", "default", "-n", name),
        30,
    )
    yield name
    print(
        f"\n--- pods of {request.node.name} ---\n{incluster.pods_table(real_cluster.kubectl, name)}"
    )
    # Wait until its pods are gone: terminating renderers hold their (fake) GPUs while they drain,
    # and the next test's preview must not queue behind them.
    real_cluster.kubectl("delete", "namespace", name, "--timeout=180s")


def tryonmodel(
    name: str,
    namespace: str,
    model: str,
    backends: incluster.DevBackends,
    replicas: int = 1,
    **rollout: Any,
) -> dict[str, Any]:
    """The TryOnModel of ``incluster.tryonmodel`` on this session's images (``TAG``)."""
    return incluster.tryonmodel(name, namespace, model, backends, replicas, tag=TAG, **rollout)


def apply_tryonmodel(cluster: RealCluster, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(manifest))


def wait_serving(
    cluster: RealCluster, name: str, namespace: str, version: str, timeout: float = 300
) -> dict[str, Any]:
    def healthy() -> dict[str, Any] | None:
        status = cluster.status(name, namespace)
        return status if incluster.serving(status, version, settled=True) else None

    return dict(wait_for(f"{namespace}/{name} Healthy on version {version}", healthy, timeout))


def cluster_ip(cluster: RealCluster, service: str, namespace: str) -> str:
    return str(cluster.get("service", service, namespace)["spec"]["clusterIP"])


def try_on(url: str, timeout: float = 60) -> tuple[int, str, bytes]:
    """One shopper request (person + garment PNGs) as a shop backend sends it."""
    import httpx

    resp = httpx.post(f"{url}/v1/tryon", files=incluster.shopper_images(), timeout=timeout)
    return resp.status_code, resp.headers.get("X-Model-Version", ""), resp.content


def run_in_pod(cluster: RealCluster, namespace: str, script: str, timeout: int = 120) -> str:
    """Runs a Python snippet in a throwaway pod (the renderer image) on real-node-1; its output."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"tryon.dev/real-node": "true"},
            # The shop namespace enforces Pod Security "restricted".
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "imagePullSecrets": [{"name": registry.PULL_SECRET}],
            "containers": [
                {
                    "name": "probe",
                    "image": incluster.image("tryon-renderer", TAG),
                    "imagePullPolicy": registry.pull_policy(TAG),
                    "command": ["python", "-c", script],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(pod))

    def finished() -> str | None:
        phase = cluster.get("pod", name, namespace).get("status", {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(f"pod {name} to finish", finished, timeout)
    logs = cluster.kubectl("logs", "-n", namespace, name)
    cluster.kubectl("delete", "pod", "-n", namespace, name, "--wait=false")
    assert phase == "Succeeded", f"pod {name} {phase}:\n{logs}"
    return logs
