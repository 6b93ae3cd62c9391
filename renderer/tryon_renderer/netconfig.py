"""The hyper-parameters every served architecture is rebuilt from (stored with its weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NetworkConfig:
    """Width, depth and category count: all an architecture needs besides its name."""

    base_width: int = 16
    levels: int = 3
    num_categories: int = 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        """Unknown keys are ignored, so an older renderer reads a newer version's config."""
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})
