"""examples/dev-mlflow-s3.yaml and examples/argocd-application.yaml hold together.

The server-side checks (schemas, Pod Security "restricted") are in
tests/integration/chart/test_manifests_server_side.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
DEV = REPO / "examples" / "dev-mlflow-s3.yaml"
ARGO = REPO / "examples" / "argocd-application.yaml"
CHART = REPO / "charts" / "tryon-operator"


@pytest.fixture(scope="module")
def dev() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(DEV.read_text()) if doc]


def _by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_specs(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"]
            for o in objects if o["kind"] in ("Deployment", "Job")}


def test_services_match_the_operator_default_tracking_uri(dev) -> None:
    services = _by_kind(dev, "Service")
    deployments = _by_kind(dev, "Deployment")
    chart_default = yaml.safe_load((CHART / "values.yaml").read_text())["mlflow"]["trackingUri"]
    assert chart_default == "http://mlflow.mlflow:5000"
    assert services["mlflow"]["metadata"]["namespace"] == "mlflow"
    assert [p["port"] for p in services["mlflow"]["spec"]["ports"]] == [5000]
    for name, service in services.items():
        assert service["spec"]["type"] == "ClusterIP", f"{name} must stay in-cluster"
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {p["name"] for c in deployments[name]["spec"]["template"]["spec"][
            "containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    assert not [o for o in dev if o["kind"] == "Ingress"]


def test_credentials_come_from_the_secret_and_agree(dev) -> None:
    secret = _by_kind(dev, "Secret")["s3-credentials"]["stringData"]
    identities = json.loads(secret["s3.json"])["identities"]
    assert identities[0]["credentials"] == [{
        "accessKey": secret["AWS_ACCESS_KEY_ID"], "secretKey": secret["AWS_SECRET_ACCESS_KEY"]}]
    for name, pod in _pod_specs(dev).items():
        for container in pod["containers"]:
            for env in container.get("env", []):
                if env["name"].startswith("AWS_") and "KEY" in env["name"]:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "s3-credentials" and ref["key"] in secret, (name, env)
    mlflow_args = _pod_specs(dev)["mlflow"]["containers"][0]["args"]
    assert "--no-serve-artifacts" in mlflow_args  # so the tracking server needs no S3 key
    assert "--default-artifact-root=s3://mlflow/" in mlflow_args
    assert any(a.startswith("--allowed-hosts=") and "mlflow.mlflow:5000" in a for a in mlflow_args)


def test_every_pod_is_non_root_with_pinned_images(dev) -> None:
    for name, pod in _pod_specs(dev).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), image
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            assert "limits" in container["resources"], name


def test_argocd_application_points_at_the_chart_with_valid_values() -> None:
    app = yaml.safe_load(ARGO.read_text())
    assert app["kind"] == "Application" and app["apiVersion"] == "argoproj.io/v1alpha1"
    source = app["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    overrides = source["helm"]["valuesObject"]

    def merged(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(
                base.get(key), dict) else value
        return out

    jsonschema.validate(merged(defaults, overrides), schema)
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]
