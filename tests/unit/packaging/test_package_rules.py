"""Rules of the house that a test can hold: imports point one way (no cycle between modules or
between folders, TYPE_CHECKING imports included), and no package module passes 400 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
PACKAGES = (
    REPO / "operator" / "tryon_operator",
    REPO / "renderer" / "tryon_renderer",
    REPO / "training" / "tryon_model",
)
MAX_MODULE_LINES = 400
Graph = dict[str, set[str]]


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a package is its __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imported_names(module: str, path: Path) -> Iterator[str]:
    """What ``module`` imports, as dotted names (relative imports resolved): ``from pkg import x``
    gives ``pkg.x``, whether x is a submodule or a name defined in pkg."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(package: Path) -> Graph:
    """Module -> the package's modules it imports (the longest imported name that is one)."""
    files = module_files(package)
    graph: Graph = {name: set() for name in files}
    for name, path in files.items():
        for imported in imported_names(name, path):
            target = imported
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def folder_graph(package: Path) -> Graph:
    """The same edges between folders (a module belongs to its folder's package)."""
    files = module_files(package)
    folder = {
        name: name if path.name == "__init__.py" else name.rpartition(".")[0]
        for name, path in files.items()
    }
    graph: Graph = {f: set() for f in folder.values()}
    for name, targets in import_graph(package).items():
        for target in targets:
            a, b = folder[name], folder[target]
            if not (a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")):
                graph[a].add(b)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            if group:
                found.append(sorted([node, *group]))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle_between_modules(package: Path) -> None:
    assert cycles(import_graph(package)) == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle_between_folders(package: Path) -> None:
    assert cycles(folder_graph(package)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_no_package_module_is_over_400_lines(package: Path) -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in package.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_the_operator_package_root_has_at_most_12_entries_besides_its_init() -> None:
    root = REPO / "operator" / "tryon_operator"
    entries = sorted(
        p.name
        for p in root.iterdir()
        if p.name not in ("__init__.py", "__pycache__")
        and (p.suffix == ".py" or (p / "__init__.py").exists())
    )
    assert len(entries) <= 12, entries


WAIVER = "# noqa: PLR0913"


def silent_waivers(source: str) -> list[int]:
    """Line numbers of ``noqa: PLR0913`` waivers that give no reason after the code."""
    return [
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if WAIVER in line and not line.partition(WAIVER)[2].strip(" -:")
    ]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_every_waiver_of_the_six_argument_rule_says_why(package: Path) -> None:
    """Over six arguments means a keyword-only dataclass, or a ``noqa`` that gives its reason."""
    silent = {
        str(path.relative_to(REPO)): numbers
        for path in sorted(package.rglob("*.py"))
        if (numbers := silent_waivers(path.read_text()))
    }
    assert silent == {}


def test_a_waiver_without_a_reason_is_found() -> None:
    source = "def f(  # noqa: PLR0913\n    a, b, c, d, e, f, g): ...\ndef g(  # noqa: PLR0913 - x\n"
    assert silent_waivers(source) == [1]
