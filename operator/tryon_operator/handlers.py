"""Thin kopf handlers: every event and timer tick runs the same reconcile.

Shared clients live on kopf's ``memo`` (set up in the startup handler); nothing is module-global.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from .announce import start_announcer
from .audit import configure_audit_logging
from .errors import InvalidSpecError, KubeConflictError, KubeError
from .gateways.kube import KubeGateway
from .gateways.mlflow import MlflowRegistry
from .gateways.smoke import SmokeTester
from .metrics import Metrics
from .models import GROUP, PLURAL, VERSION
from .reconcile import Reconciler
from .resync import Resyncer
from .settings import OperatorSettings
from .webhook import WebhookVerifier, make_app, schedule, serve

log = logging.getLogger(__name__)


def make_api_client() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (``KUBECONFIG``)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except ConfigException:
        api: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
        return api


def build_reconciler(settings: OperatorSettings, api_client: client.ApiClient) -> Reconciler:
    return Reconciler(
        kube=KubeGateway(api_client, crashloop_restarts=settings.crashloop_restarts),
        registry=MlflowRegistry(
            timeout=settings.mlflow_timeout_seconds, token=settings.mlflow_token
        ),
        smoke=SmokeTester(),
        settings=settings,
        metrics=Metrics(),
    )


def run_reconcile(memo: Any, namespace: str, name: str, *, from_event: bool) -> None:
    """Maps domain errors to kopf's: retry soon for API trouble, stop for an invalid spec."""
    reconciler: Reconciler = memo.reconciler
    try:
        reconciler.reconcile(namespace, name)
    except InvalidSpecError as err:
        if from_event:
            raise kopf.PermanentError(f"invalid spec: {err}") from err
    except KubeConflictError as err:
        raise kopf.TemporaryError(f"conflict, retrying: {err}", delay=1) from err
    except KubeError as err:
        reconciler.metrics.reconcile_errors.labels(namespace, name, "KubeError").inc()
        raise kopf.TemporaryError(f"Kubernetes API error: {err}", delay=5) from err


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Adds the operator's handlers to ``registry`` (resync interval comes from ``settings``)."""

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """Same credentials as the gateway: in-cluster, else the kubeconfig."""
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        kopf_settings = settings
        kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        kopf_settings.posting.level = logging.WARNING
        kopf_settings.execution.max_workers = 8
        reconciler = build_reconciler(operator_settings, make_api_client())
        memo.reconciler = reconciler
        memo.resyncer = Resyncer(reconciler.reconcile, operator_settings.resync_seconds)
        memo.webhook_runner = None
        configure_audit_logging()
        reconciler.announcer, memo.notifier = await start_announcer(
            operator_settings, reconciler.metrics.registry, reconciler.kube.emit_event
        )
        if operator_settings.metrics_port:
            reconciler.metrics.serve(operator_settings.metrics_port, operator_settings.metrics_host)
        if operator_settings.webhook_port:
            if not operator_settings.webhook_secret:
                raise kopf.PermanentError("TRYON_WEBHOOK_SECRET is required with a webhook port")
            loop = asyncio.get_running_loop()

            def trigger(registered_model: str) -> int:
                reconciler.cache.invalidate(registered_model)
                targets = sorted(reconciler.watched.get(registered_model, set()))
                for ns, name in targets:
                    schedule(loop, functools.partial(reconciler.reconcile, ns, name))
                return len(targets)

            verifier = WebhookVerifier(
                operator_settings.webhook_secret,
                tolerance=operator_settings.webhook_tolerance_seconds,
            )
            memo.webhook_runner = await serve(
                make_app(verifier, trigger),
                operator_settings.webhook_host,
                operator_settings.webhook_port,
            )

    operator_settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        resyncer = getattr(memo, "resyncer", None)
        if resyncer is not None:
            await resyncer.stop()
        runner = getattr(memo, "webhook_runner", None)
        if runner is not None:
            await runner.cleanup()
        notifier = getattr(memo, "notifier", None)
        if notifier is not None:
            await notifier.stop(drain_seconds=3.0)

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def on_change(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
        run_reconcile(memo, namespace or "", name, from_event=True)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def on_watch_event(
        event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any
    ) -> None:
        """Keeps one resync loop per object (a kopf timer would add a finalizer)."""
        resyncer: Resyncer = memo.resyncer
        if event.get("type") == "DELETED":
            resyncer.forget(namespace or "", name)
        else:
            resyncer.ensure(namespace or "", name)
