"""The model contract: what any model served by the renderer must accept and return.

Why a written contract: the renderer serves models trained elsewhere (our own network or a team's
own PyTorch model). Everything the serving path assumes about a model lives here, is stored as
`tryon_contract.json` next to the weights, and is checked at load time, so a mismatch fails the
load instead of producing garbage at request time.

Contract (version 1):
- call: ``model(person, garment, category) -> image``
- person, garment: float32 tensors of shape (B, 3, H, W), RGB, values in [-1, 1]
  (``x = pixel / 127.5 - 1``), H x W is the contract resolution (person photo resized to it).
- category: int64 tensor of shape (B,), index into ``categories`` (default upper, lower, dress).
- output: float tensor of shape (B, 3, H, W), RGB, values in [-1, 1]; the renderer clamps and
  converts to 8-bit (``pixel = (y + 1) * 127.5``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

CONTRACT_FILE = "tryon_contract.json"
CONTRACT_VERSION = 1
DEFAULT_CATEGORIES: tuple[str, ...] = ("upper", "lower", "dress")


class ContractError(ValueError):
    """A model artifact does not follow the contract; the model must not be served."""


class ModelContract(BaseModel):
    """Machine-readable form of the contract, stored with every model version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract_version: int = CONTRACT_VERSION
    height: int = Field(256, ge=16, le=2048)
    width: int = Field(192, ge=16, le=2048)
    channels: int = 3
    value_range: tuple[float, float] = (-1.0, 1.0)
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    input_names: tuple[str, ...] = ("person", "garment", "category")
    output_name: str = "image"

    @field_validator("contract_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != CONTRACT_VERSION:
            raise ValueError(f"unsupported contract_version {value}, expected {CONTRACT_VERSION}")
        return value

    @field_validator("channels")
    @classmethod
    def _rgb_only(cls, value: int) -> int:
        if value != 3:
            raise ValueError("only RGB (3 channels) is supported")
        return value

    @field_validator("categories")
    @classmethod
    def _non_empty_unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("categories must be non-empty and unique")
        return value

    def category_index(self, name: str | None) -> int:
        """Map a category name to its index; None means the first (default) category."""
        if name is None or name == "":
            return 0
        try:
            return self.categories.index(name)
        except ValueError:
            raise ContractError(
                f"unknown category {name!r}; expected one of {list(self.categories)}"
            ) from None

    def save(self, directory: Path) -> Path:
        path = directory / CONTRACT_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, directory: Path) -> ModelContract:
        """Read the contract file; any problem becomes a ContractError."""
        path = directory / CONTRACT_FILE
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except FileNotFoundError:
            raise ContractError(f"model artifact has no {CONTRACT_FILE}") from None
        except (ValueError, TypeError) as err:
            raise ContractError(f"invalid {CONTRACT_FILE}: {err}") from err
