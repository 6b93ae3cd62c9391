"""One MLflow poll per distinct question, waking only the TryOnModels whose answer changed.

Reconciles run on watch events and a slow safety-net resync; without this loop an alias moved in
MLflow (with no webhook configured) would wait for the object's next resync. Polling per
question, not per object, keeps MLflow traffic flat as the number of TryOnModels grows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..api.errors import ModelResolutionError
from ..api.models import ModelRef
from ..gateways.mlflow import ResolvedModel
from ..gateways.ports import RegistryPort
from .cache import Answer, ResolutionKey
from .watchers import Followers

log = logging.getLogger(__name__)


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
    """Re-asks every question in the followers' cache each ``interval`` and wakes the objects
    whose answer changed."""

    def __init__(
        self,
        registry: RegistryPort,
        followers: Followers,
        interval: float,
        active: Callable[[], bool] = lambda: True,
    ) -> None:
        """``active``: whether to poll now (a standby under leader election does not)."""
        self._active = active
        self._registry = registry
        self._followers = followers
        self._interval = interval

    def poll_once(self) -> set[tuple[str, str]]:
        """Asks MLflow every known question again; returns the objects to wake."""
        cache, watchers = self._followers.cache, self._followers.watchers
        wake: set[tuple[str, str]] = set()
        for key, before in cache.snapshot().items():
            tracking_uri, registered_model = key[0], key[1]
            try:
                after: Answer = self._registry.resolve(tracking_uri, ref_for(key))
            except ModelResolutionError as err:
                after = err
            # The fresh answer is kept, not invalidated: the woken reconciles use it.
            cache.put(key, after)
            if answer_changed(before, after):
                wake |= watchers.of(registered_model)
        return wake

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._active():
                continue
            try:
                wake = await asyncio.to_thread(self.poll_once)
            except Exception:  # a bug here must not stop the polling
                log.exception("registry poll failed")
                continue
            self._followers.wake(wake)
