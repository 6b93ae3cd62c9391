"""The chart's CRD is a byte-for-byte copy of crds/tryonmodel.yaml (hack/sync-chart-crd.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
CANONICAL = REPO / "crds" / "tryonmodel.yaml"
CHART_COPY = REPO / "charts" / "tryon-operator" / "crds" / "tryonmodel.yaml"
SCRIPT = REPO / "hack" / "sync-chart-crd.sh"


def test_chart_crd_is_identical_to_the_canonical_crd() -> None:
    assert CANONICAL.is_file(), "crds/tryonmodel.yaml is missing"
    assert CHART_COPY.is_file(), "chart CRD missing: run hack/sync-chart-crd.sh"
    assert CHART_COPY.read_bytes() == CANONICAL.read_bytes(), (
        "charts/tryon-operator/crds/tryonmodel.yaml is stale: run hack/sync-chart-crd.sh")


def test_chart_crd_dir_holds_only_the_tryonmodel_crd() -> None:
    assert sorted(p.name for p in CHART_COPY.parent.iterdir()) == ["tryonmodel.yaml"]


def _fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "hack").mkdir()
    (tmp_path / "crds").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "hack" / SCRIPT.name)
    (tmp_path / "crds" / "tryonmodel.yaml").write_text("kind: CustomResourceDefinition\n")
    return tmp_path


def _sync(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(root / "hack" / SCRIPT.name), *args],
                          capture_output=True, text=True, timeout=30)


def test_sync_script_copies_and_check_mode_catches_drift(tmp_path: Path) -> None:
    root = _fake_repo(tmp_path)
    copy = root / "charts" / "tryon-operator" / "crds" / "tryonmodel.yaml"
    assert _sync(root, "--check").returncode == 1  # no copy yet
    assert _sync(root).returncode == 0
    assert copy.read_bytes() == (root / "crds" / "tryonmodel.yaml").read_bytes()
    assert _sync(root, "--check").returncode == 0
    copy.write_text("kind: CustomResourceDefinition\n# edited by hand\n")
    drift = _sync(root, "--check")
    assert drift.returncode == 1 and "run hack/sync-chart-crd.sh" in drift.stderr
    assert _sync(root, "--bogus").returncode == 2
