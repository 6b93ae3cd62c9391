"""The product on the real node: dev MLflow + S3 reached by Service names, the chart, renderers.

Shared by ``make demo`` and ``make e2e`` so both run exactly the same installation. MLflow and
SeaweedFS run on the host, bound to the node's bridge address, and are published in the cluster
as selector-less Services with an EndpointSlice (the usual way to give an outside database a
cluster name), so the operator and the renderer pods use DNS names only, never host addresses.
The operator itself runs in a pod, installed by the project's Helm chart.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import registry
from .devservers import MlflowServer, S3Server, start_mlflow_server, start_s3_server
from .nodeconfig import NODE_IP, NODE_LABEL

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tryon-operator"
DEV_NAMESPACE = "tryon-dev"
OPERATOR_NAMESPACE = "tryon-system"
RELEASE = "tryon-operator"
MLFLOW_SERVICE, MLFLOW_PORT = "mlflow", 5000
S3_SERVICE, S3_PORT = "s3", 8333
S3_SECRET = "s3-credentials"
HARNESS_LABEL = "tryon.dev/local-harness"

Kubectl = Callable[..., str]


def image_tag() -> str:
    """The tag ``make images`` pushed for this checkout (``IMAGE_TAG`` overrides it there too)."""
    return os.environ.get("IMAGE_TAG") or registry.image_tag()


def image(name: str, tag: str | None = None) -> str:
    """Where ``make images`` pushed one of the project's images: the local registry."""
    return registry.image(name, tag or image_tag())


def pull_secret(namespace: str) -> dict[str, Any]:
    """The registry credentials, as the ``kubernetes.io/dockerconfigjson`` Secret pods name."""
    return registry.pull_secret_manifest(namespace)


def workload_namespace(name: str, s3: S3Server) -> list[dict[str, Any]]:
    """A namespace for TryOnModels that enforces Pod Security "restricted", with the S3 key pair
    the renderer reads and the registry pull secret its pods name."""
    return [namespace_manifest(name, restricted=True), s3_secret(name, s3), pull_secret(name)]


def operator_namespace() -> list[dict[str, Any]]:
    """The operator's namespace (Pod Security "restricted" too) with its pull secret, made
    before the chart so its pod pulls on the first try."""
    return [
        namespace_manifest(OPERATOR_NAMESPACE, restricted=True),
        pull_secret(OPERATOR_NAMESPACE),
    ]


def service_dns(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc.cluster.local"


def host_service_manifests(
    name: str, namespace: str, port: int, host_port: int
) -> list[dict[str, Any]]:
    """A Service without selector plus the EndpointSlice that points it at a host process."""
    labels = {HARNESS_LABEL: "true"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": host_port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-host",
                "namespace": namespace,
                "labels": {**labels, "kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": host_port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        },
    ]


# What shared and managed clusters enforce; renderer pods must be admitted under it.
RESTRICTED_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def namespace_manifest(name: str, *, restricted: bool = False) -> dict[str, Any]:
    """A Namespace; ``restricted`` makes the API server enforce Pod Security "restricted"."""
    metadata: dict[str, Any] = {"name": name}
    if restricted:
        metadata["labels"] = dict(RESTRICTED_LABELS)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def apply(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    kubectl("apply", "-f", "-", input_text=json.dumps(doc))


@dataclass
class DevBackends:
    """Host-side MLflow and S3, with the names pods use for them."""

    s3: S3Server
    mlflow: MlflowServer

    @property
    def tracking_uri_in_cluster(self) -> str:
        return f"http://{service_dns(MLFLOW_SERVICE, DEV_NAMESPACE)}:{MLFLOW_PORT}"

    @property
    def s3_url_in_cluster(self) -> str:
        return f"http://{service_dns(S3_SERVICE, DEV_NAMESPACE)}:{S3_PORT}"

    def stop(self) -> None:
        self.mlflow.stop()
        self.s3.process.stop()


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def start_dev_backends(workdir: Path, kubectl: Kubectl) -> DevBackends:
    """S3 and MLflow on the node address, published as ``s3`` and ``mlflow`` in ``tryon-dev``."""
    for sub in ("s3", "mlflow"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    s3 = start_s3_server(workdir / "s3", host=NODE_IP)
    try:
        mlflow = start_mlflow_server(workdir / "mlflow", s3, host=NODE_IP)
    except BaseException:
        s3.process.stop()
        raise
    backends = DevBackends(s3, mlflow)
    apply(
        kubectl,
        namespace_manifest(DEV_NAMESPACE),
        *host_service_manifests(
            MLFLOW_SERVICE, DEV_NAMESPACE, MLFLOW_PORT, _port_of(mlflow.tracking_uri)
        ),
        *host_service_manifests(S3_SERVICE, DEV_NAMESPACE, S3_PORT, _port_of(s3.endpoint_url)),
    )
    return backends


def s3_secret(namespace: str, s3: S3Server) -> dict[str, Any]:
    """The renderer reads model artifacts from S3 itself; it gets the key pair by reference."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": S3_SECRET, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key},
    }


def operator_values(tracking_uri: str, tag: str | None = None) -> dict[str, Any]:
    """Chart values for the local real node: the image from the local registry with its pull
    secret, quick polling."""
    tag = tag or image_tag()
    return {
        "image": {
            "repository": image("tryon-operator", tag).rsplit(":", 1)[0],
            "tag": tag,
            "pullPolicy": registry.pull_policy(tag),
        },
        "imagePullSecrets": [registry.PULL_SECRET],
        "mlflow": {"trackingUri": tracking_uri, "pollSeconds": 2},
        "operator": {"resyncSeconds": 5},
        "nodeSelector": {NODE_LABEL: "true"},
    }


def helm_install_operator(
    helm: str, kubeconfig: str, values: dict[str, Any], workdir: Path, timeout_s: int = 240
) -> None:
    """``helm upgrade --install`` of the project's chart; waits until the operator pod is Ready."""
    values_file = workdir / "operator-values.json"
    values_file.write_text(json.dumps(values, indent=2))
    subprocess.run(
        [
            helm,
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "--kubeconfig",
            kubeconfig,
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--values",
            str(values_file),
            "--wait",
            "--timeout",
            f"{timeout_s}s",
        ],
        check=True,
        capture_output=True,
        text=True,
    )


def helm_binary() -> str:
    """helm from the tool cache (built by hack/build-tools.sh like the cluster's programs)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh"), "helm"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.split()
    return str(Path(out[3]) / "helm")


def renderer_spec(
    backends: DevBackends, tag: str | None = None, replicas: int = 1
) -> dict[str, Any]:
    """``spec.renderer`` for real pods on real-node-1: CPU inference, fake GPU from the plugin,
    the image pulled from the local registry with the namespace's pull secret."""
    tag = tag or image_tag()

    def secret_env(key: str) -> dict[str, Any]:
        return {"name": key, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": key}}}

    return {
        "image": image("tryon-renderer", tag),
        "imagePullPolicy": registry.pull_policy(tag),
        "podTemplate": {"spec": {"imagePullSecrets": [{"name": registry.PULL_SECRET}]}},
        "replicas": replicas,
        "nodeSelector": {NODE_LABEL: "true"},
        "resources": {
            "requests": {"cpu": "250m", "memory": "1Gi"},
            "limits": {"memory": "3Gi", "nvidia.com/gpu": 1},
        },
        "env": [
            {"name": "TRYON_DEVICE", "value": "cpu"},
            {"name": "MLFLOW_S3_ENDPOINT_URL", "value": backends.s3_url_in_cluster},
            {"name": "AWS_DEFAULT_REGION", "value": backends.s3.region},
            secret_env("AWS_ACCESS_KEY_ID"),
            secret_env("AWS_SECRET_ACCESS_KEY"),
        ],
    }


def pods_table(kubectl: Kubectl, namespace: str) -> str:
    """``kubectl get pods -o wide`` plus each pod's containerd container ID: proof they are real."""
    wide = kubectl("get", "pods", "-n", namespace, "-o", "wide")
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    ids = [
        f"{pod['metadata']['name']}  {status.get('containerID', '(not started)')}"
        for pod in pods
        for status in pod.get("status", {}).get("containerStatuses", [])
    ]
    return wide + "\n".join(ids)


# ------------------------------------------------------------ a TryOnModel and what it serves
# Shared by ``make demo`` (hack/demo.py), ``make e2e`` (tests/e2e) and bench/autoscale.py. Only
# the standard library at import: what needs the project's venv (torch, mlflow, PIL) is imported
# inside the function that uses it, so system python3 can still import this module.

ROLLOUT = {
    "autoPromote": True,
    "progressDeadlineSeconds": 240,
    "scaleDownDelaySeconds": 5,
    "postPromotionSeconds": 5,
    "smokeTest": {"enabled": True},
}


def tryonmodel(
    name: str,
    namespace: str,
    model: str,
    backends: DevBackends,
    replicas: int = 1,
    *,
    tag: str | None = None,
    autoscaling: dict[str, Any] | None = None,
    **rollout: Any,
) -> dict[str, Any]:
    """A TryOnModel serving ``model``'s ``production`` alias with real pods on real-node-1,
    promoted by itself once the smoke test passes; ``rollout`` overrides ``spec.rollout``'s
    timings (``ROLLOUT``), ``autoscaling`` is ``spec.autoscaling``."""
    spec: dict[str, Any] = {
        "model": {"registeredModel": model, "alias": "production"},
        "renderer": renderer_spec(backends, tag, replicas),
        "service": {"port": 80},
        "rollout": {**ROLLOUT, **rollout},
    }
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    return {
        "apiVersion": "tryon.dev/v1alpha1",
        "kind": "TryOnModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def tryonmodel_status(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """The TryOnModel's status as the operator last wrote it ({} before its first write)."""
    out = json.loads(kubectl("get", "tryonmodel", name, "-n", namespace, "-o", "json"))
    return dict(out.get("status") or {})


def serving(status: dict[str, Any], version: str | None = None, *, settled: bool = False) -> bool:
    """The status says Healthy (on ``version`` where given; with no rollout left if ``settled``)."""
    if status.get("phase") != "Healthy":
        return False
    if version is not None and status.get("activeVersion") != version:
        return False
    return not (settled and status.get("rollout"))


@dataclass
class Models:
    """Registers versions of one registered model in MLflow and moves its ``production`` alias.
    The S3 credentials of the artifact store come from the environment (``MlflowServer.env``)."""

    name: str
    tracking_uri: str

    def register(
        self,
        failure_mode: str | None = None,
        seed: int | None = 0,
        tags: dict[str, str] | None = None,
    ) -> str:
        """A new version of an untrained network (weights from ``seed``, unseeded if None);
        ``failure_mode`` makes it a broken one (see ``log_tryon_model``)."""
        from tryon_renderer.network import TryOnNet
        from tryon_renderer.packaging import log_tryon_model

        if seed is not None:
            import torch

            torch.manual_seed(seed)
        version = log_tryon_model(
            TryOnNet(), self.name, tracking_uri=self.tracking_uri, failure_mode=failure_mode,
            tags=tags,
        )  # fmt: skip
        return str(version.version)

    def promote(self, version: str) -> None:
        from mlflow import MlflowClient

        MlflowClient(self.tracking_uri).set_registered_model_alias(self.name, "production", version)


def shopper_images() -> dict[str, tuple[str, bytes, str]]:
    """A shopper's try-on request's files: a person and a garment PNG, as ``httpx`` sends them."""
    import io

    from PIL import Image

    def png(colour: tuple[int, int, int]) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (96, 128), colour).save(buf, "PNG")
        return buf.getvalue()

    return {
        "person": ("p.png", png((200, 150, 120)), "image/png"),
        "garment": ("g.png", png((20, 40, 200)), "image/png"),
    }
