"""pytest fixtures for the local Kubernetes control plane (``hack/localcluster``).

A test session starts its own cluster in a temporary directory and stops it at the end. To reuse a
running one (``make cluster-up``), point ``TRYON_TEST_KUBECONFIG`` at its kubeconfig, or set
``KUBECONFIG`` to a kubeconfig whose current context is the local cluster's (``tryon-local``): a
kubeconfig for any other cluster is never used, so tests cannot touch a real cluster by accident.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from hack.localcluster.cluster import Binaries, LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]

LOCAL_CONTEXT = "tryon-local"


@dataclass(frozen=True)
class KubeCluster:
    """A running control plane as tests see it."""

    kubeconfig: str
    server: str
    kubectl_path: str

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        """Runs kubectl against this cluster and returns stdout; raises with stderr on failure."""
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout + (result.stderr if result.returncode else "")

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


def _reusable_kubeconfig() -> str | None:
    explicit = os.environ.get("TRYON_TEST_KUBECONFIG")
    if explicit:
        return explicit
    candidate = os.environ.get("KUBECONFIG")
    if candidate and Path(candidate).is_file():
        try:
            current = json.loads(Path(candidate).read_text()).get("current-context")
        except ValueError:
            return None
        if current == LOCAL_CONTEXT:
            return candidate
    return None


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """The local control plane: reused when named by the environment, otherwise started here."""
    reuse = _reusable_kubeconfig()
    if reuse:
        server = json.loads(Path(reuse).read_text())["clusters"][0]["cluster"]["server"]
        yield KubeCluster(reuse, server, str(Binaries.build_or_find().kubectl))
        return
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    info = local.up()
    try:
        yield KubeCluster(info.kubeconfig, info.server, info.kubectl)
    finally:
        local.down()


@pytest.fixture(scope="session")
def kube_api(kube_cluster: KubeCluster) -> client.ApiClient:
    """A Kubernetes API client bound to the local cluster (never the ambient kubeconfig)."""
    return config.new_client_from_config(config_file=kube_cluster.kubeconfig)


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test (its default ServiceAccount exists), deleted afterwards."""
    core = client.CoreV1Api(kube_api)
    name = _namespace_name(request.node.name)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"tryon.dev/test": "true"})
        )
    )
    wait_for(
        lambda: bool(core.list_namespaced_service_account(name).items),
        30,
        f"default ServiceAccount in {name}",
    )
    yield name
    core.delete_namespace(name)


def wait_for(
    check: Callable[[], object], timeout: float, what: str, interval: float = 0.1
) -> object:
    """Polls ``check`` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as err:
            last_error = err
        time.sleep(interval)
    suffix = f" (last error: {last_error})" if last_error else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{suffix}")
