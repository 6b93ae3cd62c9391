"""The reference docs list exactly the settings the code reads, with the code's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tryon_operator.settings import ENV_PREFIX, OperatorSettings

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs"


def _documented_variables(doc: Path) -> dict[str, str]:
    """Maps each `TRYON_*` variable in the first column of a table row to its second (default)
    column, over every table of the document."""
    rows: dict[str, str] = {}
    for line in doc.read_text().splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        for name in re.findall(r"`(TRYON_[A-Z0-9_]+)`", cells[0]):
            rows[name] = cells[1]
    return rows


def _settings_variables() -> dict[str, object]:
    return {
        ENV_PREFIX + name.upper(): field.default
        for name, field in OperatorSettings.model_fields.items()
    }


def test_operator_doc_lists_every_setting_and_no_other() -> None:
    documented = _documented_variables(DOCS / "operator.md")
    assert set(documented) == set(_settings_variables())


def test_operator_doc_defaults_match_the_code() -> None:
    documented = _documented_variables(DOCS / "operator.md")
    for variable, default in _settings_variables().items():
        shown = documented[variable]
        if default is None or default == "":
            assert shown in {"\u2013", "-", "\u2014", "none", "`\"\"`"}, variable
            continue
        number = re.sub(r"\.0$", "", str(default))
        assert f"`{default}`" in shown or f"`{number}`" in shown or str(default) in shown, (
            f"{variable}: docs say {shown!r}, code says {default!r}"
        )
