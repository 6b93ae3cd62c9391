"""Thin kopf handlers: every event and timer tick runs the same reconcile.

Shared clients live on kopf's ``memo`` (set up in the startup handler); nothing is module-global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from .announce import start_announcer
from .audit import configure_audit_logging
from .builders import APP_NAME, LABEL_COLOR, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGER
from .errors import InvalidSpecError, KubeConflictError, KubeError
from .gateways.kube import KubeGateway
from .gateways.mlflow import MlflowRegistry
from .gateways.smoke import SmokeTester
from .metrics import Metrics
from .models import GROUP, KIND, PLURAL, VERSION
from .reconcile import Reconciler
from .registry_poll import RegistryPoller
from .resync import Resyncer
from .settings import OperatorSettings
from .wakeups import ChildChanges
from .webhook import WebhookVerifier, make_app, serve
from .webhook_tls import receiver_tls

log = logging.getLogger(__name__)

KOPF_WORKERS = 8  # threads for kopf's sync handlers (create/update/resume reconciles)
# Children whose changes wake their TryOnModel's loop (labels set by builders.py). HPAs are left
# to the resync: the controller-manager rewrites their status every 15 s.
OWNED_LABELS: dict[str, Any] = {LABEL_MANAGED_BY: MANAGER, LABEL_INSTANCE: kopf.PRESENT}
POD_LABELS: dict[str, Any] = {
    LABEL_NAME: APP_NAME,
    LABEL_INSTANCE: kopf.PRESENT,
    LABEL_COLOR: kopf.PRESENT,
}


def make_api_client(pool_size: int = 10) -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (``KUBECONFIG``).

    ``pool_size`` connections per host: one per thread that may call the API at once, else
    urllib3 drops and re-opens connections ("Connection pool is full") under load.
    """
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    cfg.connection_pool_maxsize = pool_size
    return client.ApiClient(cfg)


def owner_of(meta: Mapping[str, Any]) -> str | None:
    """The TryOnModel a child belongs to: its controller reference, else its instance label.

    Deployments carry both; pods (owned by a ReplicaSet) only the label.
    """
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(GROUP + "/"):
            return str(ref["name"])
    labels: Mapping[str, str] = meta.get("labels") or {}
    return labels.get(LABEL_INSTANCE)


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
        kopf_settings.execution.max_workers = KOPF_WORKERS
        workers = operator_settings.reconcile_workers
        # One connection per thread that may call the API: reconcile workers, kopf's handler
        # threads, and a margin for the registry poller and Events.
        api_client = make_api_client(pool_size=workers + KOPF_WORKERS + 8)
        reconciler = build_reconciler(operator_settings, api_client)
        memo.reconciler = reconciler
        memo.child_changes = ChildChanges()
        memo.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        memo.resyncer = Resyncer(
            reconciler.reconcile,
            operator_settings.resync_seconds,
            executor=memo.executor,
            workers=workers,
            jitter=True,
        )
        poller = RegistryPoller(
            reconciler, memo.resyncer.poke, operator_settings.mlflow_poll_seconds
        )
        memo.registry_poller = asyncio.create_task(poller.run())
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
            resyncer: Resyncer = memo.resyncer

            def trigger(registered_model: str) -> int:
                """Same path as the registry poller: fresh answer, then a poke per watcher."""
                reconciler.cache.invalidate(registered_model)
                targets = sorted(reconciler.watched.get(registered_model, set()))
                return sum(resyncer.poke(ns, name) for ns, name in targets)

            verifier = WebhookVerifier(
                operator_settings.webhook_secret,
                tolerance=operator_settings.webhook_tolerance_seconds,
            )
            memo.webhook_runner = await serve(
                make_app(verifier, trigger),
                operator_settings.webhook_host,
                operator_settings.webhook_port,
                tls=receiver_tls(operator_settings),
            )

    operator_settings = settings

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        poller = getattr(memo, "registry_poller", None)
        if poller is not None:
            poller.cancel()
        resyncer = getattr(memo, "resyncer", None)
        if resyncer is not None:
            await resyncer.stop()
        executor = getattr(memo, "executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
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

    # Watching handlers only: kopf stores no progress, diff-base or finalizer on these objects
    # (tests/integration/operator/test_op_wakeups.py checks that nothing is written to them).
    @kopf.on.event("apps", "v1", "deployments", labels=OWNED_LABELS, registry=registry)
    @kopf.on.event("v1", "services", labels=OWNED_LABELS, registry=registry)
    @kopf.on.event("v1", "pods", labels=POD_LABELS, registry=registry)
    async def on_child_event(
        body: kopf.Body, type: str | None, namespace: str | None, memo: Any, **_: Any
    ) -> None:
        """A child changed (pod readiness, a hand edit, a deletion): reconcile its owner."""
        owner = owner_of(body.get("metadata") or {})
        resyncer: Resyncer | None = getattr(memo, "resyncer", None)
        changes: ChildChanges | None = getattr(memo, "child_changes", None)
        if not owner or resyncer is None:
            return
        if changes is None or changes.worth_a_reconcile(type, body):
            resyncer.poke(namespace or "", owner)
