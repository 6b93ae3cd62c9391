"""hack/requirements-from-pyproject.py: the dependency layer the Dockerfile installs first."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "hack" / "requirements-from-pyproject.py"


def _load():
    spec = importlib.util.spec_from_file_location("requirements_from_pyproject", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower() for r in reqs}


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_operator_layer_has_kopf_and_no_torch(pyproject) -> None:
    names = _names(_load().requirements(pyproject, ["operator"]))
    assert {"kopf", "kubernetes", "pydantic"} <= names
    assert "torch" not in names and "fastapi" not in names


def test_renderer_layer_has_torch_and_no_kopf(pyproject) -> None:
    names = _names(_load().requirements(pyproject, ["renderer"]))
    assert {"torch", "fastapi", "pydantic"} <= names
    assert "kopf" not in names


def test_self_references_expand_and_never_name_the_project() -> None:
    data = {"project": {
        "name": "Demo_Pkg", "dependencies": ["a>=1"],
        "optional-dependencies": {"x": ["b", "a>=1"], "y": ["c"], "all": ["demo-pkg[x,y]", "d"]},
    }}
    assert _load().requirements(data, ["all"]) == ["a>=1", "b", "c", "d"]


def test_unknown_extra_fails_loudly(pyproject) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), str(REPO / "pyproject.toml"), "nope"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "unknown extra 'nope'" in result.stderr


def test_cli_prints_one_requirement_per_line(pyproject) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), str(REPO / "pyproject.toml"), "operator"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.splitlines() == _load().requirements(pyproject, ["operator"])


@pytest.mark.parametrize("extra", ["operator", "renderer"])
def test_each_image_layer_resolves_against_the_tested_environment(pyproject, extra) -> None:
    """The versions the test suite runs with satisfy what each image installs."""
    for line in _load().requirements(pyproject, [extra]):
        req = Requirement(line)
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), f"{req} vs installed {version}"
