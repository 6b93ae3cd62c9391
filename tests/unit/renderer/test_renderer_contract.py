"""The model contract file is validated strictly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tryon_renderer.contract import CONTRACT_FILE, ContractError, ModelContract

pytestmark = pytest.mark.unit


def test_category_index_defaults_to_first_and_rejects_unknown() -> None:
    contract = ModelContract()
    assert contract.category_index(None) == 0
    assert contract.category_index("dress") == 2
    with pytest.raises(ContractError, match="unknown category"):
        contract.category_index("hat")


def test_save_load_round_trip(tmp_path: Path) -> None:
    contract = ModelContract(height=128, width=96, categories=("upper",))
    contract.save(tmp_path)
    assert ModelContract.load(tmp_path) == contract


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"contract_version": 99}),
        json.dumps({"channels": 4}),
        json.dumps({"categories": []}),
        json.dumps({"height": 1}),
        json.dumps({"unexpected": True}),
    ],
)
def test_invalid_contract_files_are_rejected(tmp_path: Path, content: str) -> None:
    (tmp_path / CONTRACT_FILE).write_text(content)
    with pytest.raises(ContractError):
        ModelContract.load(tmp_path)


def test_missing_contract_file_is_a_contract_error(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"no tryon_contract\.json"):
        ModelContract.load(tmp_path)
