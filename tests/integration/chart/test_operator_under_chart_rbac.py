"""The real operator, run with the installed chart's arguments and settings and authenticated as
the chart's ServiceAccount (a TokenRequest token, nothing else), deploys a TryOnModel to Healthy:
the granted rights are enough, not just a list that looks right. Its liveness endpoint (what the
chart's probes call) answers too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tryon_operator.api.vocabulary import API_VERSION, GROUP, KIND, PLURAL, VERSION

from tests.integration.chart.conftest import CHART, Helm
from tests.support.cluster import KubeCluster, wait_for
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def smoke_url() -> Iterator[str]:
    """Stands in for the renderer's POST /v1/smoke: every version passes."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"passed": True, "reason": ""}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _service_account_kubeconfig(cluster: KubeCluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig whose only credential is a short-lived token of the chart's ServiceAccount."""
    token = cluster.kubectl("create", "token", sa, "--namespace", namespace,
                            "--duration=1h").strip()
    admin = json.loads(Path(cluster.kubeconfig).read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "local", "cluster": {
            "server": cluster.server, "certificate-authority-data": ca}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": sa}}],
    }))
    path.chmod(0o600)
    return path


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def test_operator_reaches_healthy_with_only_the_chart_rbac(
    helm: Helm, kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str,
    mlflow_server: Any, smoke_url: str, tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    release = "op"
    sa = f"{release}-tryon-operator"
    helm.run("install", release, str(CHART), "--kubeconfig", kube_cluster.kubeconfig,
             "--namespace", namespace, "--set", "rbac.scope=namespaced",
             "--set", "operator.resyncSeconds=1", "--set", "mlflow.pollSeconds=1")
    try:
        wait_for(lambda: "Established" in kube_cluster.kubectl(
            "get", "crd", f"{PLURAL}.{GROUP}", "-o",
            "jsonpath={.status.conditions[?(@.status=='True')].type}"), 60, "CRD established")

        # the chart's own arguments and settings, from the Deployment it installed
        container = kube_cluster.get_json("deployment", sa, "-n", namespace)[
            "spec"]["template"]["spec"]["containers"][0]
        liveness_port = free_port()
        args = [a.replace("0.0.0.0:8082", f"127.0.0.1:{liveness_port}") for a in container["args"]]
        assert f"--namespace={namespace}" in args
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env.update({
            # what differs off-cluster: where MLflow and the smoke endpoint are, loopback ports
            "TRYON_MLFLOW_TRACKING_URI": mlflow_server.tracking_uri,
            "TRYON_SERVICE_URL_TEMPLATE": smoke_url,
            "TRYON_METRICS_PORT": str(free_port()),
            "TRYON_METRICS_HOST": "127.0.0.1",
            "HOME": str(tmp_path),
        })
        kubeconfig = _service_account_kubeconfig(kube_cluster, namespace, sa,
                                                 tmp_path / "operator.kubeconfig")
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TRYON_", "MLFLOW_", "KUBECONFIG"))}

        mlflow = MlflowClient(tracking_uri=mlflow_server.tracking_uri,
                              registry_uri=mlflow_server.tracking_uri)
        mlflow.create_registered_model(namespace)
        version = str(mlflow.create_model_version(namespace, source="s3://models/x").version)
        mlflow.set_registered_model_alias(namespace, "production", version)

        log_path = tmp_path / "operator.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tryon_operator", *args],
                env={**base_env, **env, "KUBECONFIG": str(kubeconfig)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            custom = client.CustomObjectsApi(kube_api)
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "dress"},
                "spec": {"model": {"registeredModel": namespace},
                         "renderer": {"image": "tryon-renderer:test", "replicas": 1},
                         "rollout": {"progressDeadlineSeconds": 60, "scaleDownDelaySeconds": 1,
                                     "postPromotionSeconds": 1}},
            })

            def healthy() -> bool:
                status = custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, "dress").get("status", {})
                return status.get("phase") == "Healthy" and status.get("activeVersion") == version

            try:
                wait_for(healthy, 120, "TryOnModel Healthy under the chart's RBAC")
            except AssertionError as err:
                raise AssertionError(f"{err}\n--- operator log ---\n"
                                     f"{log_path.read_text(errors='replace')[-6000:]}") from None
            assert _http_status(f"http://127.0.0.1:{liveness_port}/healthz") == 200
            kube_cluster.get_json("deployment", "dress-blue", "-n", namespace)
            kube_cluster.get_json("service", "dress", "-n", namespace)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        text = log_path.read_text(errors="replace")
        assert "Forbidden" not in text and "forbidden" not in text, text[-6000:]
    finally:
        helm.run("uninstall", release, "--kubeconfig", kube_cluster.kubeconfig,
                 "--namespace", namespace, "--wait", "--timeout", "60s")
