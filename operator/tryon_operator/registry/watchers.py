"""Which TryOnModels follow which registered model, so a registry change wakes exactly them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .cache import ResolutionCache

Key = tuple[str, str]  # namespace, name


class ModelWatchers:
    """Thread-safe: reconciles add, the poller and the webhook read, deletions forget.

    One model per object: an object whose spec moves to another model stops waking on the old one.
    """

    def __init__(self) -> None:
        self._model_of: dict[Key, str] = {}
        self._lock = threading.Lock()

    def follow(self, key: Key, registered_model: str) -> None:
        with self._lock:
            self._model_of[key] = registered_model

    def forget(self, key: Key) -> None:
        with self._lock:
            self._model_of.pop(key, None)

    def of(self, registered_model: str) -> set[Key]:
        with self._lock:
            return {key for key, model in self._model_of.items() if model == registered_model}


@dataclass(frozen=True, kw_only=True)
class Followers:
    """The registry answers the reconciles share, who follows which model, and how to wake one
    (the work queue's ``poke``): what the registry poller and the webhook receiver both need."""

    cache: ResolutionCache
    watchers: ModelWatchers
    poke: Callable[[str, str], object]

    def wake(self, keys: Iterable[Key]) -> int:
        """Pokes each object, in a stable order; returns how many were woken."""
        return sum(bool(self.poke(namespace, name)) for namespace, name in sorted(keys))

    def wake_followers(self, registered_model: str) -> int:
        """A push from the registry: forget the model's answers, so each follower asks MLflow
        afresh, then poke each follower."""
        self.cache.invalidate(registered_model)
        return self.wake(self.watchers.of(registered_model))
