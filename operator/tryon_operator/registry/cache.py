"""Memories of answers, so MLflow and the API server are asked on their own schedule."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..api.errors import ModelResolutionError
from ..gateways.mlflow import ResolvedModel

_T = TypeVar("_T")

ResolutionKey = tuple[str, str, str, str]  # tracking URI, registered model, selector kind, value
Answer = ResolvedModel | ModelResolutionError


@dataclass
class _CacheEntry:
    key: ResolutionKey
    fetched: float
    result: Answer
    failures: int = 0


class ResolutionCache:
    """The last registry answer per selector, so MLflow is polled on its own interval.

    Shared by every TryOnModel that asks the same question (tracking URI, model, selector): N
    objects on one registered model cost one registry call per interval, not N.
    """

    def __init__(self, poll_seconds: float, monotonic: Callable[[], float] = time.monotonic):
        self._poll = poll_seconds
        self._monotonic = monotonic
        self._entries: dict[ResolutionKey, _CacheEntry] = {}
        self._lock = threading.Lock()

    def get(self, key: ResolutionKey) -> Answer | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            # Failures retry with backoff: 1 s, 2 s, 4 s ... up to the poll interval.
            ttl = (
                self._poll
                if isinstance(entry.result, ResolvedModel)
                else min(self._poll, 2.0 ** (entry.failures - 1))
            )
            if self._monotonic() - entry.fetched >= ttl:
                return None
            return entry.result

    def put(self, key: ResolutionKey, result: Answer) -> None:
        with self._lock:
            old = self._entries.get(key)
            failures = 0
            if isinstance(result, ModelResolutionError):
                failures = (old.failures if old is not None else 0) + 1
            self._entries[key] = _CacheEntry(key, self._monotonic(), result, failures)

    def snapshot(self) -> dict[ResolutionKey, Answer]:
        """Every question asked so far and its last answer (for the registry poller)."""
        with self._lock:
            return {key: entry.result for key, entry in self._entries.items()}

    def invalidate(self, registered_model: str | None = None) -> None:
        with self._lock:
            for key in list(self._entries):
                if registered_model is None or key[1] == registered_model:
                    del self._entries[key]


class TtlCache(Generic[_T]):
    """Answers read within the last ``ttl`` seconds, shared by all reconciles (thread-safe).

    For GPU capacity, which only goes into messages: a wave of previews short of GPUs would
    otherwise list every pod in the cluster once per object and reconcile.
    """

    def __init__(self, ttl: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._monotonic = monotonic
        self._answers: dict[Hashable, tuple[float, _T]] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, read: Callable[[], _T]) -> _T:
        now = self._monotonic()
        with self._guard:
            hit = self._answers.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        answer = read()
        with self._guard:
            self._answers[key] = (now, answer)
        return answer
