"""The GitHub Actions workflows cannot run here; these checks keep them honest: they run the
project's real entry points, pin their actions, keep secrets out of shell text, and their shell
steps pass shellcheck."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.packaging.test_shell_scripts import shellcheck_binary

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
WORKFLOWS = REPO / ".github" / "workflows"
NAMES = ("ci", "chaos-nightly", "e2e-kind", "release")


def _load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / f"{name}.yaml").read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job_name, step) for job_name, job in workflow["jobs"].items()
            for step in job["steps"]]


def _runs(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for _, step in _steps(workflow))


@pytest.fixture(scope="module", params=NAMES)
def workflow(request) -> tuple[str, dict]:
    return request.param, _load(request.param)


def test_every_workflow_exists_and_nothing_else() -> None:
    assert sorted(p.stem for p in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


def test_least_privilege_token_and_timeouts(workflow) -> None:
    name, data = workflow
    assert data["permissions"] == {"contents": "read"}, name
    for job_name, job in data["jobs"].items():
        assert job.get("timeout-minutes"), f"{name}/{job_name} has no timeout"
        assert job["runs-on"].startswith("ubuntu-"), f"{name}/{job_name}"


def test_actions_are_pinned_to_a_release(workflow) -> None:
    name, data = workflow
    for job_name, step in _steps(data):
        uses = step.get("uses")
        if uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", uses), (
                f"{name}/{job_name}: {uses} is not pinned to a version")


def test_no_secret_or_event_text_is_expanded_inside_shell(workflow) -> None:
    """Secrets reach shell steps through env only; event fields never become shell code."""
    name, data = workflow
    for job_name, step in _steps(data):
        run = step.get("run", "")
        assert "secrets." not in run, f"{name}/{job_name}: secret expanded in shell"
        assert "github.event." not in run, f"{name}/{job_name}: event text in shell"


def test_shell_steps_pass_shellcheck(workflow, tmp_path: Path) -> None:
    name, data = workflow
    scripts: list[str] = []
    for index, (job_name, step) in enumerate(_steps(data)):
        run = step.get("run")
        if not run:
            continue
        # ${{ ... }} is substituted by Actions before the shell sees the text.
        script = re.sub(r"\$\{\{[^}]*\}\}", "GHA_EXPRESSION", run)
        path = tmp_path / f"{name}-{job_name}-{index}.sh"
        path.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + script)
        scripts.append(str(path))
    assert scripts, f"{name} has no shell steps"
    result = subprocess.run([shellcheck_binary(), "--severity=style", *scripts],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name}:\n{result.stdout}"


def test_ci_runs_the_project_ci_entry_point() -> None:
    data = _load("ci")
    assert "pull_request" in data["on"] and data["on"]["push"]["branches"] == ["main"]
    runs = _runs(data)
    assert "bash .ci/run" in runs and (REPO / ".ci" / "run").is_file()
    assert "make lint" in runs
    assert "bash hack/sync-chart-crd.sh --check" in runs
    go = next(step for _, step in _steps(data) if step.get("uses", "").startswith(
        "actions/setup-go@"))
    assert go["with"]["cache-dependency-path"] == "hack/tools/*/go.sum"
    assert list((REPO / "hack" / "tools").glob("*/go.sum"))


def test_e2e_runs_the_kind_script_with_a_cpu_renderer() -> None:
    data = _load("e2e-kind")
    runs = _runs(data)
    assert "bash hack/kind-e2e.sh" in runs and (REPO / "hack" / "kind-e2e.sh").is_file()
    script_step = next(step for _, step in _steps(data) if "kind-e2e.sh" in step.get("run", ""))
    assert script_step["env"]["TORCH_INDEX_URL"].endswith("/whl/cpu")
    assert script_step["env"]["PYTHON"] == ".venv/bin/python"
    kind = next(step for _, step in _steps(data) if step.get("uses", "").startswith(
        "helm/kind-action@"))
    assert kind["with"]["install_only"] is True  # the script creates and deletes the cluster


def test_release_pushes_both_images_tagged_with_the_commit_sha() -> None:
    data = _load("release")
    images = data["jobs"]["images"]
    assert images["strategy"]["matrix"]["target"] == ["operator", "renderer"]
    build = next(step for step in images["steps"]
                 if step.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["target"] == "${{ matrix.target }}"
    assert build["with"]["push"] is True
    assert build["with"]["tags"].strip() == (
        "${{ secrets.REGISTRY }}/tryon-${{ matrix.target }}:${{ github.sha }}")
    assert "COMMIT=${{ github.sha }}" in build["with"]["build-args"]
    login = next(step for step in images["steps"]
                 if step.get("uses", "").startswith("docker/login-action@"))
    assert login["with"]["username"] == "${{ secrets.REGISTRY_USERNAME }}"
    assert login["with"]["password"] == "${{ secrets.REGISTRY_PASSWORD }}"


def test_release_deploys_the_same_sha_with_helm_upgrade() -> None:
    deploy = _load("release")["jobs"]["deploy"]
    assert deploy["needs"] == "images"
    assert deploy["env"]["IMAGE_TAG"] == "${{ github.sha }}"
    run = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert "helm upgrade --install tryon-operator charts/tryon-operator" in run
    assert '--set image.tag="$IMAGE_TAG"' in run and "--atomic" in run
    assert '--set image.repository="$REGISTRY/tryon-operator"' in run
    assert (REPO / "charts" / "tryon-operator" / "Chart.yaml").is_file()


def test_release_notifies_slack_only_when_a_webhook_is_configured() -> None:
    notify = _load("release")["jobs"]["notify"]
    assert notify["if"] == "always()" and notify["needs"] == ["images", "deploy"]
    assert notify["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    slack = [s for s in notify["steps"] if s.get("uses", "").startswith("slackapi/")]
    assert len(slack) == 2
    failure, release = slack
    assert "env.SLACK_WEBHOOK_URL != ''" in failure["if"] and "failure" in failure["if"]
    assert "env.SLACK_WEBHOOK_URL != ''" in release["if"] and "success" in release["if"]
    for step in slack:
        assert step["with"]["webhook-type"] == "incoming-webhook"
        assert "text" in yaml.safe_load(step["with"]["payload"])
