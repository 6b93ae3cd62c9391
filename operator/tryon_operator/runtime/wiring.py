"""Startup and shutdown of the running operator: every client, cache, loop and server, built
from the settings in one place, and the state the reconciles share (registry answers, model
watchers, the announcer) handed to whoever needs it. ``handlers.py`` calls ``start`` and ``stop``
and passes kopf's TryOnModel events to ``Runtime.wakeups``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes import client

from ..announce.announcer import start_announcer
from ..announce.audit import configure_audit_logging
from ..announce.notify.dispatcher import Dispatcher
from ..api.vocabulary import MANAGER
from ..gateways.cache.children import CHILDREN, child_informers
from ..gateways.cache.informer import Informer, wait_synced
from ..gateways.cache.kube import CachedKube, CacheMetrics, Stores
from ..gateways.client import make_api_client
from ..gateways.fenced import FencedRegistry
from ..gateways.kube import KubeGateway
from ..gateways.mlflow import MlflowRegistry
from ..gateways.smoke import SmokeTester
from ..metrics import Metrics
from ..reconcile import Reconciler, ReconcileResult
from ..registry.cache import ResolutionCache
from ..registry.handover import ANNOTATION_LEADER_WEBHOOK, Handover, lease_annotations
from ..registry.poll import RegistryPoller
from ..registry.tls import receiver_tls
from ..registry.watchers import Followers, ModelWatchers
from ..registry.webhook import WebhookVerifier, make_app, serve
from ..settings import OperatorSettings
from .leadership.elector import LeaderElector, LeadershipCallbacks
from .leadership.lease import default_identity
from .wakeups import Wakeups
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

CACHE_SYNC_SECONDS = 30.0


@dataclass
class Runtime:
    """Everything the running operator holds; kopf keeps it on ``memo.runtime``."""

    settings: OperatorSettings
    reconciler: Reconciler
    queue: WorkQueue
    followers: Followers
    wakeups: Wakeups
    stores: Stores
    informers: list[Informer]
    executor: ThreadPoolExecutor
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    webhook_runner: Any = None
    notifier: Dispatcher | None = None
    elector: LeaderElector | None = None

    @property
    def leading(self) -> bool:
        """Whether this replica may write: always without leader election."""
        return self.elector is None or self.elector.still_leader()

    def lead(self) -> None:
        """Won the Lease (on the event loop): forget registry answers from before, then look at
        every object afresh; nothing decided as a standby is trusted."""
        log.info("leading: reconciling all %d TryOnModels afresh", len(self.queue.known))
        self.followers.cache.invalidate()
        self.queue.active.set()
        for namespace, name in self.queue.known:
            self.queue.poke(namespace, name)

    def stand_by(self) -> None:
        """Lost or gave up the Lease (on the event loop): start no more reconciles. Ones in
        flight are fenced: each write checks the Lease first (``CachedKube``'s fence)."""
        log.info("standing by: no reconciles until this replica leads again")
        self.queue.active.clear()


async def start(settings: OperatorSettings, namespaces: Sequence[str] = ()) -> Runtime:
    """Builds and starts everything; reconciles begin once this replica may write."""
    # One connection per thread that may call the API: reconcile workers, the informers, and a
    # margin for the registry poller and Events.
    api_client = make_api_client(
        pool_size=settings.reconcile_workers + len(CHILDREN) + 8,
        user_agent=f"{MANAGER}/{default_identity(settings.pod_name)}",
    )
    metrics = Metrics()
    holder: list[Runtime] = []  # the Runtime, once built (the elector's callbacks need it)
    elector = _elector(settings, api_client, metrics, lambda: holder[0])
    fence = elector.write_batch if elector is not None else contextlib.nullcontext
    live = KubeGateway(api_client, crashloop_restarts=settings.crashloop_restarts)
    stores = Stores()
    kube = CachedKube(
        live,
        stores,
        crashloop_restarts=settings.crashloop_restarts,
        metrics=CacheMetrics(metrics.registry),
        fence=fence,
    )
    configure_audit_logging()
    announcer, notifier = await start_announcer(settings, metrics.registry, live.emit_event)
    registry = FencedRegistry(
        MlflowRegistry(timeout=settings.mlflow_timeout_seconds, token=settings.mlflow_token),
        fence,
    )
    cache, watchers = ResolutionCache(settings.mlflow_poll_seconds), ModelWatchers()
    reconciler = Reconciler(
        kube=kube,
        registry=registry,
        smoke=SmokeTester(),
        settings=settings,
        metrics=metrics,
        cache=cache,
        announcer=announcer,
        watchers=watchers,
    )
    executor = ThreadPoolExecutor(
        max_workers=settings.reconcile_workers, thread_name_prefix="reconcile"
    )

    def reconcile(namespace: str, name: str) -> ReconcileResult | None:
        with fence():  # NotLeaderError up front on a standby; step-down waits for this one
            return reconciler.reconcile(namespace, name)

    queue = WorkQueue(
        reconcile,
        settings.resync_seconds,
        executor=executor,
        workers=settings.reconcile_workers,
        jitter=True,
        count_error=lambda ns, name, kind: metrics.reconcile_errors.labels(ns, name, kind).inc(),
    )
    followers = Followers(cache=cache, watchers=watchers, poke=queue.poke)
    wakeups = Wakeups(queue=queue, tryonmodels=stores.tryonmodels, watchers=watchers)
    informers = await _start_informers(api_client, stores, wakeups, namespaces)
    runtime = Runtime(
        settings,
        reconciler,
        queue,
        followers,
        wakeups,
        stores,
        informers,
        executor,
        notifier=notifier,
        elector=elector,
    )
    holder.append(runtime)
    if elector is not None:
        queue.active.clear()  # a standby until the Lease is won
        elector.start()
    poller = RegistryPoller(
        registry, followers, settings.mlflow_poll_seconds, active=lambda: runtime.leading
    )
    runtime.tasks.append(asyncio.create_task(poller.run()))
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    if settings.webhook_port:
        runtime.webhook_runner = await _start_webhook(settings, runtime)
    return runtime


def _elector(
    settings: OperatorSettings,
    api_client: client.ApiClient,
    metrics: Metrics,
    runtime: Callable[[], Runtime],
) -> LeaderElector | None:
    """The Lease campaign, or None when leader election is off (one replica writes alone)."""
    if not settings.leader_election:
        return None
    loop = asyncio.get_running_loop()

    def started() -> None:  # on the elector's callback thread
        loop.call_soon_threadsafe(runtime().lead)

    def stopped() -> None:
        loop.call_soon_threadsafe(runtime().stand_by)

    callbacks = LeadershipCallbacks(on_started_leading=started, on_stopped_leading=stopped)
    return LeaderElector.from_settings(
        settings, api_client, callbacks, metrics, holder_annotations=lease_annotations(settings)
    )


async def _start_informers(
    api_client: client.ApiClient, stores: Stores, wakeups: Wakeups, namespaces: Sequence[str]
) -> list[Informer]:
    """Starts the child informers; their events go to ``wakeups`` on the event loop."""
    loop = asyncio.get_running_loop()

    def from_informer(event_type: str, obj: dict[str, Any]) -> None:  # on an informer thread
        loop.call_soon_threadsafe(wakeups.child_changed, event_type, obj)

    informers = child_informers(api_client, stores, namespaces, on_event=from_informer)
    for informer in informers:
        informer.start()
    if not await asyncio.to_thread(wait_synced, informers, CACHE_SYNC_SECONDS):
        log.warning(
            "watch cache not synced after %.0fs; reading live until then", CACHE_SYNC_SECONDS
        )
    return informers


async def _start_webhook(settings: OperatorSettings, runtime: Runtime) -> Any:
    if not settings.webhook_secret:
        raise ValueError("TRYON_WEBHOOK_SECRET is required with a webhook port")
    elector = runtime.elector
    handover = None
    if elector is not None:
        handover = Handover(
            lambda: runtime.leading,
            partial(elector.leader_annotation, ANNOTATION_LEADER_WEBHOOK),
            partial(elector.read_leader_annotation, ANNOTATION_LEADER_WEBHOOK),
        )
    verifier = WebhookVerifier(
        settings.webhook_secret, tolerance=settings.webhook_tolerance_seconds
    )
    return await serve(
        make_app(verifier, runtime.followers.wake_followers, handover),
        settings.webhook_host,
        settings.webhook_port,
        tls=receiver_tls(settings),
    )


async def stop(runtime: Runtime) -> None:
    if runtime.elector is not None:  # releases the Lease: a standby takes over within ~2 s
        await asyncio.to_thread(runtime.elector.stop)
    for task in runtime.tasks:
        task.cancel()
    await runtime.queue.stop()
    for informer in runtime.informers:
        informer.stop()
    runtime.executor.shutdown(wait=False, cancel_futures=True)
    if runtime.webhook_runner is not None:
        await runtime.webhook_runner.cleanup()
    if runtime.notifier is not None:
        await runtime.notifier.stop(drain_seconds=3.0)
