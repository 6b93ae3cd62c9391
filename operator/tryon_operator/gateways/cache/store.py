"""Objects of one kind as the watch last showed them, indexed by namespace and instance label.

Written by one informer thread (or kopf's event loop for TryOnModels), read by many reconcile
threads: every access holds the lock, and readers get the stored dicts, which are never mutated
after they are stored (a new event stores a new dict).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...api.vocabulary import LABEL_INSTANCE

JsonObj = dict[str, Any]
Key = tuple[str, str]  # namespace, name


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def version_of(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return str(version) if version is not None else None


def _instance(obj: Mapping[str, Any]) -> str | None:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(LABEL_INSTANCE)


class Store:
    def __init__(self, kind: str, changed: threading.Condition | None = None) -> None:
        """``changed`` may be shared by several stores, so one wait covers all of them."""
        self.kind = kind
        self._objects: dict[Key, JsonObj] = {}
        self._by_instance: dict[Key, set[str]] = {}
        self._changed = changed or threading.Condition(threading.RLock())
        self.synced = threading.Event()  # set once the first full listing is in

    # ------------------------------------------------------------------ writers

    def upsert(self, obj: JsonObj) -> JsonObj | None:
        """Stores ``obj``; returns what it replaced."""
        key = key_of(obj)
        with self._changed:
            old = self._objects.get(key)
            if old is not None:
                self._unindex(key, old)
            self._objects[key] = obj
            instance = _instance(obj)
            if instance is not None:
                self._by_instance.setdefault((key[0], instance), set()).add(key[1])
            self._changed.notify_all()
        return old

    def remove(self, obj: Mapping[str, Any]) -> JsonObj | None:
        key = key_of(obj)
        with self._changed:
            old = self._objects.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            self._changed.notify_all()
        return old

    def replace(self, objs: Iterable[JsonObj], namespace: str | None = None) -> list[JsonObj]:
        """A fresh listing (of ``namespace``, or all): stores it, returns the objects dropped."""
        fresh = {key_of(o): o for o in objs}
        with self._changed:
            stale = [
                o
                for k, o in self._objects.items()
                if k not in fresh and (namespace is None or k[0] == namespace)
            ]
        for obj in stale:
            self.remove(obj)
        for obj in fresh.values():
            self.upsert(obj)
        self.synced.set()
        return stale

    def _unindex(self, key: Key, obj: Mapping[str, Any]) -> None:
        instance = _instance(obj)
        if instance is None:
            return
        names = self._by_instance.get((key[0], instance))
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._by_instance[(key[0], instance)]

    # ------------------------------------------------------------------ readers

    def get(self, namespace: str, name: str) -> JsonObj | None:
        with self._changed:
            return self._objects.get((namespace, name))

    def of_instance(self, namespace: str, instance: str) -> list[JsonObj]:
        with self._changed:
            names = sorted(self._by_instance.get((namespace, instance), ()))
            return [self._objects[(namespace, n)] for n in names]

    def __len__(self) -> int:
        with self._changed:
            return len(self._objects)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Blocks until ``ready()`` (checked after each change) or ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(ready, timeout)
