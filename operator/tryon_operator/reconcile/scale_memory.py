"""What the operator's own scaling loop remembers between reconciles: per colour, since when it
has watched it and its recent recommendations. In memory only: a restarted or newly elected
operator starts a fresh window, and ``decide/autoscale.py`` will not scale in before one passes."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from ..decide.autoscale import Recommendation

Key = tuple[str, str, str]  # namespace, TryOnModel, colour


@dataclass
class Watched:
    since: float
    recommendations: deque[Recommendation] = field(default_factory=deque)


class ScaleMemory:
    """Thread-safe: reconciles of different objects run on different threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[Key, Watched] = {}

    def watched(self, key: Key, now: float) -> tuple[float, list[Recommendation]]:
        """When watching ``key`` began (now, the first time) and its recommendations so far."""
        with self._lock:
            entry = self._watched.setdefault(key, Watched(now))
            return entry.since, list(entry.recommendations)

    def record(self, key: Key, recommendation: Recommendation, keep_seconds: float) -> None:
        with self._lock:
            entry = self._watched.setdefault(key, Watched(recommendation[0]))
            entry.recommendations.append(recommendation)
            while entry.recommendations and (
                recommendation[0] - entry.recommendations[0][0] > keep_seconds
            ):
                entry.recommendations.popleft()

    def forget(self, namespace: str, name: str, keep: str | None = None) -> None:
        """Drops the colours of a TryOnModel other than ``keep`` (the flip moved the scaler)."""
        with self._lock:
            for key in [k for k in self._watched if k[:2] == (namespace, name) and k[2] != keep]:
                del self._watched[key]
