"""The apiserver accepts the example manifests and the chart's pod under Pod Security
"restricted": `kubectl apply --dry-run=server` in a namespace labelled to warn on violations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.chart.conftest import Helm
from tests.support.cluster import KubeCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[3]


def _restricted(cluster: KubeCluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "--overwrite",
                    "pod-security.kubernetes.io/warn=restricted",
                    "pod-security.kubernetes.io/warn-version=latest")


def _dry_run(cluster: KubeCluster, namespace: str, objects: list[dict]) -> tuple[str, str]:
    """stdout and stderr (where Pod Security warnings go) of a server-side dry run."""
    result = subprocess.run(
        [cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}", "apply", "--dry-run=server",
         "--namespace", namespace, "-f", "-"],
        input=yaml.safe_dump_all(objects), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def test_restricted_namespace_warns_about_a_privileged_pod(
    kube_cluster: KubeCluster, namespace: str,
) -> None:
    """The check below can fail: a root, privileged Deployment draws the warning."""
    _restricted(kube_cluster, namespace)
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
           "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
               "metadata": {"labels": {"a": "b"}},
               "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1",
                                        "securityContext": {"privileged": True}}]}}}}
    _, stderr = _dry_run(kube_cluster, namespace, [bad])
    assert "would violate PodSecurity" in stderr


def test_dev_mlflow_s3_is_valid_and_restricted(kube_cluster: KubeCluster, namespace: str) -> None:
    _restricted(kube_cluster, namespace)
    docs = [d for d in yaml.safe_load_all((REPO / "examples/dev-mlflow-s3.yaml").read_text()) if d]
    assert docs[0]["kind"] == "Namespace"
    assert docs[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    objects = []
    for doc in docs[1:]:  # the Namespace itself is replaced by the test's namespace
        doc["metadata"]["namespace"] = namespace
        objects.append(doc)
    out, warnings = _dry_run(kube_cluster, namespace, objects)
    assert warnings == "", warnings
    created = [line for line in out.splitlines() if line.endswith("created (server dry run)")]
    assert len(created) == len(objects), out


def test_chart_objects_are_valid_and_restricted(
    helm: Helm, kube_cluster: KubeCluster, namespace: str,
) -> None:
    _restricted(kube_cluster, namespace)
    rendered = helm.template("--set", "webhook.enabled=true", "--set", "webhook.secret.name=hooks",
                             "--set", "webhook.tls.secretName=hooks-tls",
                             release="dry", namespace=namespace)
    namespaced = [o for o in rendered if o["kind"] in (
        "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "Role", "RoleBinding")]
    assert len(namespaced) == 6
    out, warnings = _dry_run(kube_cluster, namespace, namespaced)
    assert warnings == "", warnings
    assert "deployment.apps/dry-tryon-operator created (server dry run)" in out
