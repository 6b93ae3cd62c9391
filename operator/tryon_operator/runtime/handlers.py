"""kopf's part: credentials, startup and shutdown, and the TryOnModel watch that feeds the one
work queue (``workqueue.py``). No handler here reconciles or writes anything itself: kopf
stores no progress, diff-base or finalizer on TryOnModels (on.event handlers only; a test in
tests/integration/operator/test_op_wakeups.py checks that nothing is written to them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import kopf

from ..api.models import GROUP, PLURAL, VERSION
from ..settings import OperatorSettings
from . import wiring

log = logging.getLogger(__name__)


def register(
    registry: kopf.OperatorRegistry,
    operator_settings: OperatorSettings,
    namespaces: Sequence[str] = (),
) -> None:
    """Adds the operator's handlers to ``registry``; ``namespaces`` as given to kopf."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Same credentials as the gateway: in-cluster, else the kubeconfig."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.posting.level = logging.WARNING  # kopf's own settings, not the operator's
        try:
            memo.runtime = await wiring.start(operator_settings, namespaces)
        except ValueError as err:  # a setting that cannot work: stop with the reason
            raise kopf.PermanentError(str(err)) from err

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        runtime = getattr(memo, "runtime", None)
        if runtime is not None:
            await wiring.stop(runtime)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_tryonmodel(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
        runtime: wiring.Runtime | None = getattr(memo, "runtime", None)
        if runtime is not None:
            runtime.wakeups.tryonmodel_event(event.get("type"), event.get("object") or {})
