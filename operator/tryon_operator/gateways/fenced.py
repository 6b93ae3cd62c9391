"""The registry port with its one write (version tags) behind the leader-election fence."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from ..api.models import ModelRef
from .mlflow import ResolvedModel
from .ports import RegistryPort


class FencedRegistry:
    def __init__(
        self, registry: RegistryPort, fence: Callable[[], AbstractContextManager[None]]
    ) -> None:
        self._registry = registry
        self._fence = fence

    def resolve(self, tracking_uri: str, ref: ModelRef) -> ResolvedModel:
        return self._registry.resolve(tracking_uri, ref)

    def set_version_tag(
        self, tracking_uri: str, name: str, version: str, key: str, value: str
    ) -> None:
        with self._fence():
            self._registry.set_version_tag(tracking_uri, name, version, key, value)
