"""Which TryOnModels follow which registered model, so a registry change wakes exactly them."""

from __future__ import annotations

import threading

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
