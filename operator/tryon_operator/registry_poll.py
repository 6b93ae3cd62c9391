"""One MLflow poll per distinct question, waking only the TryOnModels whose answer changed.

Reconciles run on watch events and a slow safety-net resync; without this loop an alias moved in
MLflow (with no webhook configured) would wait for the object's next resync. Polling per
question, not per object, keeps MLflow traffic flat as the number of TryOnModels grows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .errors import ModelResolutionError
from .gateways.mlflow import ResolvedModel
from .models import ModelRef
from .reconcile import Reconciler, ResolutionKey

log = logging.getLogger(__name__)

Answer = ResolvedModel | ModelResolutionError


def answer_changed(before: Answer, after: Answer) -> bool:
    """A different version, run or source, a failure starting or ending, or a new failure reason."""
    if isinstance(before, ResolvedModel) and isinstance(after, ResolvedModel):
        return (before.version, before.run_id, before.source) != (
            after.version,
            after.run_id,
            after.source,
        )
    if isinstance(before, ModelResolutionError) and isinstance(after, ModelResolutionError):
        return before.reason != after.reason
    return True


def ref_for(key: ResolutionKey) -> ModelRef:
    _, registered_model, kind, value = key
    return ModelRef.model_validate({"registeredModel": registered_model, kind: value})


class RegistryPoller:
    def __init__(
        self, reconciler: Reconciler, poke: Callable[[str, str], object], interval: float
    ) -> None:
        self._reconciler = reconciler
        self._poke = poke
        self._interval = interval

    def poll_once(self) -> set[tuple[str, str]]:
        """Asks MLflow every known question again; returns the objects to wake."""
        cache = self._reconciler.cache
        wake: set[tuple[str, str]] = set()
        for key, before in cache.snapshot().items():
            tracking_uri, registered_model = key[0], key[1]
            try:
                after: Answer = self._reconciler.registry.resolve(tracking_uri, ref_for(key))
            except ModelResolutionError as err:
                after = err
            cache.put(key, after)
            if answer_changed(before, after):
                wake |= self._reconciler.watched.get(registered_model, set())
        return wake

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                wake = await asyncio.to_thread(self.poll_once)
            except Exception:  # a bug here must not stop the polling
                log.exception("registry poll failed")
                continue
            for namespace, name in sorted(wake):
                self._poke(namespace, name)
