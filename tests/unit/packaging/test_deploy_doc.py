"""docs/deploy.md's values table lists every key of the chart's values.yaml with its default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "deploy.md"
VALUES = REPO / "charts" / "tryon-operator" / "values.yaml"
# Whole objects the table describes in words rather than key by key.
OBJECT_KEYS = {"resources", "podSecurityContext", "securityContext", "livenessProbe",
               "readinessProbe"}


def flatten(values: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in OBJECT_KEYS:
            out |= flatten(value, path + ".")
        else:
            out[path] = value
    return out


def shown(value: object) -> str:
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value)


def table(doc: str) -> dict[str, str]:
    section = doc.split("## Values reference", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([^`]+)` \| (.+?) \| (.+) \|$", line)
        if match:
            assert match[1] not in rows, f"{match[1]} listed twice"
            assert match[3].strip(), f"{match[1]} has no description"
            rows[match[1]] = match[2]
    return rows


def test_flatten_stops_at_lists_empty_maps_and_whole_objects() -> None:
    assert flatten({"a": {"b": 1, "c": []}, "d": {}, "resources": {"x": 1}}) == {
        "a.b": 1, "a.c": [], "d": {}, "resources": {"x": 1}}


def test_every_value_is_documented_with_its_default() -> None:
    values = flatten(yaml.safe_load(VALUES.read_text()))
    rows = table(DOC.read_text())
    assert sorted(rows) == sorted(values), (
        f"missing: {sorted(set(values) - set(rows))}, stale: {sorted(set(rows) - set(values))}")
    for key, value in values.items():
        expected = "see values.yaml" if key in OBJECT_KEYS else f"`{shown(value)}`"
        assert rows[key] == expected, f"{key}: doc says {rows[key]}, values.yaml {expected}"


def test_env_vars_named_in_the_doc_are_operator_settings() -> None:
    from tryon_operator.settings import ENV_PREFIX, OperatorSettings

    known = {ENV_PREFIX + name.upper() for name in OperatorSettings.model_fields}
    named = set(re.findall(r"`(TRYON_[A-Z_]+)`", DOC.read_text()))
    image_only = {"TRYON_HOST", "TRYON_PORT"}  # the renderer's, set by its image
    assert named - image_only, "the doc should name the settings it maps"
    assert named - image_only <= known, sorted(named - image_only - known)


def test_files_the_doc_points_at_exist() -> None:
    for path in re.findall(r"`((?:charts|examples|hack|tests|\.github)/[^`\s]+)`",
                           DOC.read_text()):
        assert (REPO / path).exists(), path
