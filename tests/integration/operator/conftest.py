"""Fixtures for operator integration tests: the CRD on the real control plane, the operator as a
real process (restartable), a switchable stand-in for the renderer's smoke endpoint, and helpers
to register model versions on the real MLflow server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.support.cluster import wait_for

REPO = Path(__file__).resolve().parents[3]
CRD_PATH = REPO / "crds" / "tryonmodel.yaml"


@pytest.fixture(scope="session")
def crd(kube_cluster: Any, kube_api: client.ApiClient) -> dict[str, Any]:
    """The TryOnModel CRD applied (server-side) and Established."""
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    ext = client.ApiextensionsV1Api(kube_api)

    def established() -> bool:
        conds = ext.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status.conditions
        return any(c.type == "Established" and c.status == "True" for c in conds or [])

    wait_for(established, 30, "TryOnModel CRD Established")
    return yaml.safe_load(CRD_PATH.read_text())


# ----------------------------------------------------------------- smoke stand-in


@dataclass
class SmokeStandIn:
    """Answers POST /v1/smoke like the renderer; tests choose the verdict per model version."""

    url: str
    failing_versions: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)


@pytest.fixture
def smoke() -> Iterator[SmokeStandIn]:
    state = SmokeStandIn(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            version = str(body.get("expectedVersion"))
            state.calls.append(version)
            passed = version not in state.failing_versions
            payload = json.dumps({"passed": passed, "reason": "" if passed else "blank output"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------- MLflow


@dataclass
class Registry:
    """A registered model of its own per test on the real MLflow server."""

    client: Any
    name: str

    def add_version(self) -> str:
        mv = self.client.create_model_version(self.name, source=f"s3://models/{self.name}/x")
        return str(mv.version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)


@pytest.fixture
def registry(mlflow_server: Any, namespace: str) -> Registry:
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=mlflow_server.tracking_uri,
                                 registry_uri=mlflow_server.tracking_uri)
    mlflow_client.create_registered_model(namespace)
    return Registry(mlflow_client, namespace)


# ----------------------------------------------------------------- operator process


@dataclass
class OperatorProcess:
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]


@pytest.fixture
def operator_factory(kube_cluster: Any, crd: Any, mlflow_server: Any, namespace: str,
                     tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def make(smoke_url: str = "http://127.0.0.1:9", **extra_env: str) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": kube_cluster.kubeconfig,
            "TRYON_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
            "TRYON_MLFLOW_POLL_SECONDS": "1",
            "TRYON_MLFLOW_TIMEOUT_SECONDS": "2",
            "TRYON_RESYNC_SECONDS": "0.5",
            "TRYON_SERVICE_URL_TEMPLATE": smoke_url,
            # One operator per test, killed and restarted at will: no Lease to wait out. The HA
            # tests turn election on; the Lease then lives in the test's namespace.
            "TRYON_LEADER_ELECTION": "false",
            "TRYON_LEADER_ELECTION_NAMESPACE": namespace,
            **extra_env,
        }
        op = OperatorProcess(
            [sys.executable, "-m", "tryon_operator", "--namespace", namespace],
            env, tmp_path / "operator.log",
        )
        op.start()
        started.append(op)
        return op

    yield make
    for op in started:
        op.stop()
    if started:  # shown by pytest only when the test fails
        print("---- operator log (tail) ----\n" + started[-1].log())


# ----------------------------------------------------------------- TryOnModel helpers


@dataclass
class Tom:
    """One TryOnModel in a test namespace, with read helpers."""

    api: client.ApiClient
    namespace: str
    name: str

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def get(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                        self.name)

    def status(self) -> dict[str, Any]:
        return self.get().get("status") or {}

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                   self.name, {"spec": spec})

    def condition(self, type_: str) -> dict[str, Any]:
        return next((c for c in self.status().get("conditions", []) if c["type"] == type_), {})

    def selector_color(self, service: str | None = None) -> str | None:
        svc = client.CoreV1Api(self.api).read_namespaced_service(service or self.name,
                                                                 self.namespace)
        return (svc.spec.selector or {}).get("tryon.dev/color")

    def deployment(self, color: str) -> Any:
        return client.AppsV1Api(self.api).read_namespaced_deployment(
            f"{self.name}-{color}", self.namespace)

    def ready_pods(self, color: str) -> int:
        """Ready pods of a colour, as the Service's endpoints (and the operator) count them."""
        pods = client.CoreV1Api(self.api).list_namespaced_pod(
            self.namespace, label_selector=f"tryon.dev/color={color}").items
        return sum(1 for p in pods if p.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or []))

    def events(self) -> list[str]:
        items = client.CoreV1Api(self.api).list_namespaced_event(self.namespace).items
        return [e.reason for e in sorted(items, key=lambda e: e.metadata.creation_timestamp)
                if e.involved_object.kind == "TryOnModel"]

    def wait_events(self, *reasons: str, timeout: float = 10) -> list[str]:
        """Events are posted after the change they report, so a test waits for them."""

        def all_posted() -> list[str] | None:
            events = self.events()
            return events if set(reasons) <= set(events) else None

        return cast(list[str], wait_for(all_posted, timeout, f"events {', '.join(reasons)}"))

    def wait(self, check: Callable[[dict[str, Any]], object], timeout: float, what: str) -> Any:
        return wait_for(lambda: check(self.status()), timeout, what)


def tryon_body(name: str, registered_model: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TryOnModel",
        "metadata": {"name": name},
        "spec": {
            "model": {"registeredModel": registered_model},
            "renderer": {"image": "tryon-renderer:test", "replicas": 1},
            "rollout": {"progressDeadlineSeconds": 20, "scaleDownDelaySeconds": 1,
                        "postPromotionSeconds": 1},
        },
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body["spec"].get(key), dict):
            body["spec"][key] = {**body["spec"][key], **value}
        else:
            body["spec"][key] = value
    return body


@pytest.fixture
def create_tom(kube_api: client.ApiClient, namespace: str, crd: Any) -> Callable[..., Tom]:
    def create(name: str, registered_model: str, **spec: Any) -> Tom:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, tryon_body(name, registered_model, **spec))
        return Tom(kube_api, namespace, name)

    return create


def _healthy_on(version: str, color: str | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        return (status.get("phase") == "Healthy" and status.get("activeVersion") == version
                and (color is None or status.get("activeColor") == color)
                and status.get("rollout") is None)
    return check


@pytest.fixture
def healthy_on() -> Callable[..., Callable[[dict[str, Any]], bool]]:
    """``healthy_on(version, color)``: a status check for a finished, Healthy rollout."""
    return _healthy_on
