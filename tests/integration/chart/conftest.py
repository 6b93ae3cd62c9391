"""Helm for the chart tests: built from Go modules by hack/build-tools.sh, isolated HELM_* dirs."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "tryon-operator"
KUBE_VERSION = "1.36.0"


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path

    def run(
        self, *args: str, check: bool = True, timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
        env.update({
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "KUBECONFIG": str(self.home / "no-kubeconfig"),  # only an explicit --kubeconfig counts
        })
        result = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                                timeout=timeout, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    def template(self, *args: str, release: str = "rel", namespace: str = "ops") -> list[dict]:
        """Renders the chart and returns its objects (empty documents dropped)."""
        out = self.run("template", release, str(CHART), "--namespace", namespace,
                       "--kube-version", KUBE_VERSION, *args).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    out = subprocess.run(["bash", str(REPO / "hack" / "build-tools.sh"), "helm"], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=3000).stdout.split()
    binary = Path(out[3]) / "helm"
    assert binary.is_file(), f"helm not built at {binary}"
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))
