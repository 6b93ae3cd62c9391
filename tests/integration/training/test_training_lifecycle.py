"""The model lifecycle against a real MLflow server whose artifacts live in a real S3 server.

make -> validate -> train -> register -> promote on an empty registry gives v1 as production; a
deliberately worse candidate (trained for zero steps) is refused with its metrics and the alias
stays; --force needs a reason and leaves an audit trail; rollback restores the previous version;
a model trained here is served by the real renderer process and passes its own smoke check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx
import pytest
from tryon_model.cli import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from tryon_model.registry import HISTORY_TAG, Registry

from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BIN = Path(sys.executable).parent
# Tiny but real: 32x24 images, a 4-wide network, a few dozen steps on one CPU thread.
TRAIN_ARGS = ["--threads", "1"]
TINY_TRAIN = ["--base-width", "8", "--batch-size", "8", "--epochs", "8", "--device", "cpu"]


@dataclass(frozen=True)
class Lifecycle:
    name: str
    data: Path
    registry: Registry
    good: str  # promoted on the empty registry
    bad: str | None = None


@pytest.fixture(scope="module")
def mlflow_env(mlflow_server) -> Iterator[dict[str, str]]:
    env = {**mlflow_server.env, "TRYON_PROGRESS": "0", "TRYON_ACTOR": "ci-tester"}
    with mock.patch.dict(os.environ, env):
        yield env


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def lifecycle(mlflow_env, tmp_path_factory) -> Lifecycle:
    """make -> validate -> train -> promote, through the installed console script."""
    data = tmp_path_factory.mktemp("lifecycle") / "data"
    name = f"tryon-model-it-{uuid.uuid4().hex[:8]}"
    cli = str(BIN / "tryon-model")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
        )

    made = run("data", "make", str(data), "--count", "48", "--height", "32", "--width", "24")
    assert made.returncode == 0, made.stderr
    checked = run("data", "validate", str(data))
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout
    trained = run(*TRAIN_ARGS, "train", "--data", str(data), "--model", name, *TINY_TRAIN, "--json")
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["version"] == "1"
    promoted = run("promote", "--data", str(data), "--model", name, "--version", "1")
    assert promoted.returncode == 0, promoted.stderr
    assert "production: none -> v1" in promoted.stdout
    return Lifecycle(name, data, Registry(mlflow_env["MLFLOW_TRACKING_URI"]), "1")


@pytest.fixture(scope="module")
def with_bad_candidate(lifecycle: Lifecycle) -> Lifecycle:
    """v2: the same network trained for zero steps (a deliberately worse candidate)."""
    code = main(
        [
            *TRAIN_ARGS,
            "train",
            "--data",
            str(lifecycle.data),
            "--model",
            lifecycle.name,
            *TINY_TRAIN,
            "--max-steps",
            "0",
            "--json",
        ]
    )
    assert code == EXIT_OK
    latest = lifecycle.registry.latest_version(lifecycle.name)
    assert latest is not None
    return Lifecycle(
        lifecycle.name, lifecycle.data, lifecycle.registry, lifecycle.good, latest.version
    )


def test_first_promotion_on_an_empty_registry(lifecycle: Lifecycle) -> None:
    reg = lifecycle.registry
    prod = reg.alias_version(lifecycle.name)
    assert prod is not None and prod.version == "1"
    tags = prod.tags
    assert tags["tryon.promoted_by"] == "ci-tester"
    assert tags["tryon.parent_version"] == "none"
    assert tags["tryon.promotion_forced"] == "false"
    assert tags["tryon.promoted_at"].endswith("Z")
    assert tags["tryon.dataset_hash"].startswith("sha256:")
    assert tags["tryon.eval_dataset_hash"] == tags["tryon.dataset_hash"]
    metrics = json.loads(tags["tryon.promotion_metrics"])
    assert metrics["production"] is None and 0 < metrics["candidate"]["l1"] < 1
    # The training run carries params, per-epoch metrics, dataset hash and code version.
    run = reg.client.get_run(prod.run_id)
    assert run.data.params["epochs"] == "8"
    assert run.data.tags["tryon.dataset_hash"] == tags["tryon.dataset_hash"]
    assert "tryon.git_commit" in run.data.tags or "tryon.package_version" in run.data.tags
    history = reg.client.get_metric_history(prod.run_id, "val_l1")
    assert [m.step for m in history] == list(range(8))
    assert run.data.metrics["model_size_bytes"] > 0 and run.data.metrics["latency_ms_cpu_b1"] > 0
    artifacts = {a.path for a in reg.client.list_artifacts(prod.run_id, "model")}
    assert {"model/weights.pt", "model/tryon_contract.json", "model/golden"} <= artifacts
    assert prod.source is not None and prod.source.startswith("s3://")


def test_worse_candidate_is_refused_with_metrics(with_bad_candidate: Lifecycle, capsys) -> None:
    lc = with_bad_candidate
    code, out, err = run_cli(
        ["promote", "--data", str(lc.data), "--model", lc.name, "--version", str(lc.bad)], capsys
    )
    assert code == EXIT_REFUSED
    assert "promotion refused" in err and f"v{lc.bad} refused against production v1" in err
    assert "l1 " in err and "vs production" in err  # the numbers are in the message
    assert "production v1" in out and f"candidate v{lc.bad}" in out  # side-by-side table
    prod = lc.registry.alias_version(lc.name)
    assert prod is not None and prod.version == "1", "the alias must not move"
    refused = lc.registry.version(lc.name, str(lc.bad))
    assert refused.tags["tryon.refused_by"] == "ci-tester"
    assert "refused" in refused.tags["tryon.refusal"]


def test_force_needs_reason_then_rollback_restores(with_bad_candidate: Lifecycle, capsys) -> None:
    lc = with_bad_candidate
    base = ["promote", "--data", str(lc.data), "--model", lc.name, "--version", str(lc.bad)]
    assert run_cli([*base, "--force"], capsys)[0] == EXIT_USAGE
    code, out, _ = run_cli([*base, "--force", "--reason", "incident 42 hotfix"], capsys)
    assert code == EXIT_OK and f"production: v1 -> v{lc.bad}" in out
    forced = lc.registry.version(lc.name, str(lc.bad))
    assert forced.tags["tryon.promotion_forced"] == "true"
    assert forced.tags["tryon.promotion_reason"] == "incident 42 hotfix"
    assert forced.tags["tryon.parent_version"] == "1"
    assert lc.registry.alias_version(lc.name).version == lc.bad  # type: ignore[union-attr]

    code, out, _ = run_cli(["rollback", "--model", lc.name, "--reason", "bad output"], capsys)
    assert code == EXIT_OK and f"production: v{lc.bad} -> v1" in out
    assert lc.registry.alias_version(lc.name).version == "1"  # type: ignore[union-attr]
    rolled = lc.registry.version(lc.name, str(lc.bad))
    assert rolled.tags["tryon.rolled_back_to"] == "1"
    assert rolled.tags["tryon.rollback_reason"] == "bad output"
    assert lc.registry.version(lc.name, "1").tags["tryon.restored_from"] == lc.bad
    history = json.loads(lc.registry.model_tags(lc.name)[HISTORY_TAG])
    assert [h["action"] for h in history][-3:] == ["promote", "force-promote", "rollback"]
    code, _, err = run_cli(
        ["promote", "--data", str(lc.data), "--model", lc.name, "--version", "1"], capsys
    )
    assert code == EXIT_REFUSED and "already production" in err
    assert "tryon.refused_at" not in lc.registry.version(lc.name, "1").tags
    # v1 was the first production: there is nothing before it.
    code, _, err = run_cli(["rollback", "--model", lc.name], capsys)
    assert code == EXIT_FAILED and "no previous production" in err
    code, out, _ = run_cli(["history", "--model", lc.name], capsys)
    assert code == EXIT_OK and "rollback" in out and "incident 42 hotfix" in out


def test_evaluate_side_by_side(with_bad_candidate: Lifecycle, capsys) -> None:
    lc = with_bad_candidate
    code, out, _ = run_cli(
        [
            "evaluate",
            "--data",
            str(lc.data),
            "--model",
            lc.name,
            "--version",
            str(lc.bad),
            "--json",
        ],
        capsys,
    )
    assert code == EXIT_OK
    columns = json.loads(out)["metrics"]
    assert set(columns) == {"v1 (production)", f"v{lc.bad}"}
    assert columns[f"v{lc.bad}"]["l1"] > columns["v1 (production)"]["l1"]


def test_renderer_serves_the_trained_model_and_passes_smoke(
    lifecycle: Lifecycle, mlflow_env, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TRYON_MODEL_URI": f"models:/{lifecycle.name}/{lifecycle.good}",
        "TRYON_PORT": str(port),
        "TRYON_CACHE_DIR": str(tmp_path / "cache"),
        "TRYON_DEVICE": "cpu",
        "TRYON_TORCH_THREADS": "1",
    }
    log = open(tmp_path / "renderer.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(BIN / "tryon-renderer")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    ready = True
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready, (tmp_path / "renderer.log").read_text()[-3000:]
        info = httpx.get(f"{base}/v1/model", timeout=10).json()
        assert str(info.get("version")) == lifecycle.good
        smoke = httpx.post(f"{base}/v1/smoke", timeout=60).json()
        assert smoke["passed"] is True, smoke
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_unreachable_server_is_a_clear_error(lifecycle: Lifecycle, capsys) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    code, _, err = run_cli(
        [
            "--tracking-uri",
            dead,
            "promote",
            "--data",
            str(lifecycle.data),
            "--model",
            lifecycle.name,
            "--version",
            "1",
        ],
        capsys,
    )
    assert code == EXIT_FAILED
    assert err.startswith("error: ") and dead in err
    assert time.monotonic() - start < 60
    code, _, err = run_cli(["--tracking-uri", dead, "rollback", "--model", lifecycle.name], capsys)
    assert code == EXIT_FAILED and "cannot reach MLflow" in err
