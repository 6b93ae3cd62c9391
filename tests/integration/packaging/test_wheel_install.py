"""What the Dockerfile's operator stages do, done here without Docker.

The same steps in the same order: copy only what .dockerignore lets through, `pip wheel --no-deps`,
a fresh venv, the dependency layer from hack/requirements-from-pyproject.py, the wheel with
--no-deps, `pip check`, pip/setuptools removed, then the entry point runs. pip's cache is reused, so
only a first run downloads anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[3]
CONTEXT = (
    "pyproject.toml", "README.md", "operator", "renderer", "training",
    "hack/requirements-from-pyproject.py",
)


def _run(argv: list[str | Path], timeout: float, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=env)
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("image")
    src = root / "src"
    for name in CONTEXT:
        origin = REPO / name
        assert origin.exists(), f"build context lacks {name}"
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(origin, target)

    # stage "wheel"
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", wheels, "."],
         timeout=300, cwd=src)
    (wheel,) = wheels.glob("tryon_operator-*.whl")

    # stage "operator-venv"
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    requirements = root / "requirements.txt"
    requirements.write_text(_run([py, src / "hack/requirements-from-pyproject.py",
                                  src / "pyproject.toml", "operator"], timeout=60))
    _run([py, "-m", "pip", "install", "--quiet", "--requirement", requirements], timeout=600)
    _run([py, "-m", "pip", "install", "--no-deps", wheel], timeout=120)
    _run([py, "-m", "pip", "check"], timeout=120)
    _run([py, "-m", "pip", "uninstall", "--yes", "pip", "setuptools", "wheel"], timeout=120)
    return {"wheel": wheel, "venv": env_dir, "python": py}


def test_wheel_holds_both_packages_and_both_entry_points(built) -> None:
    with zipfile.ZipFile(built["wheel"]) as whl:
        names = whl.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = whl.read(entry_points).decode()
    for package in ("tryon_operator", "tryon_renderer", "tryon_model"):
        assert f"{package}/__init__.py" in names, f"{package} missing from the wheel"
    assert not any(n.startswith(("tests/", "operator/", "renderer/", "training/", "hack/"))
                   for n in names)
    assert "tryon-operator = tryon_operator.__main__:main" in scripts
    assert "tryon-renderer = tryon_renderer.__main__:main" in scripts


def test_operator_entry_point_runs_from_the_installed_wheel(built) -> None:
    out = _run([built["venv"] / "bin" / "tryon-operator", "--help"], timeout=120, cwd=built["venv"])
    assert "usage" in out.lower()


def test_operator_environment_has_no_torch_and_no_pip(built) -> None:
    probe = ("import importlib.util as u, json; "
             "print(json.dumps({m: u.find_spec(m) is not None for m in "
             "('torch', 'pip', 'setuptools', 'kopf', 'tryon_operator')}))")
    out = _run([built["python"], "-c", probe], timeout=60, cwd=built["venv"])
    assert out.strip() == (
        '{"torch": false, "pip": false, "setuptools": false, "kopf": true, "tryon_operator": true}')


def test_installed_package_is_the_wheel_not_the_checkout(built) -> None:
    out = _run([built["python"], "-c", "import tryon_operator; print(tryon_operator.__file__)"],
               timeout=60, cwd=built["venv"])
    assert Path(out.strip()).is_relative_to(built["venv"])
