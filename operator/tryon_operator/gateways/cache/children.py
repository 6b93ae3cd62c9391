"""Which children the watch caches hold: the objects builders.py makes, found by the labels it
sets, and the renderer pods; one informer each per watched namespace. Which of their changes wake
a reconcile is ``runtime/wakeups.py``'s to say."""

from __future__ import annotations

from collections.abc import Sequence

from kubernetes import client

from ...api.vocabulary import (
    APP_NAME,
    LABEL_COLOR,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    MANAGER,
)
from .informer import Informer, OnEvent, Resource, slim_pod, without_managed_fields
from .kube import Stores

OWNED = f"{LABEL_MANAGED_BY}={MANAGER},{LABEL_INSTANCE}"
RENDERER_PODS = f"{LABEL_NAME}={APP_NAME},{LABEL_INSTANCE},{LABEL_COLOR}"
CHILDREN = (
    Resource("Deployment", "/apis/apps/v1", "deployments", OWNED),
    Resource("Service", "/api/v1", "services", OWNED, without_managed_fields),
    Resource("HorizontalPodAutoscaler", "/apis/autoscaling/v2", "horizontalpodautoscalers", OWNED),
    Resource("Pod", "/api/v1", "pods", RENDERER_PODS, slim_pod),
)


def informer_namespaces(namespaces: Sequence[str]) -> list[str | None]:
    """One informer per named namespace; the whole cluster when none is named or any is a glob."""
    if not namespaces or any(ch in ns for ns in namespaces for ch in "*?["):
        return [None]
    return list(dict.fromkeys(namespaces))


def child_informers(
    api_client: client.ApiClient,
    stores: Stores,
    namespaces: Sequence[str],
    on_event: OnEvent | None = None,
) -> list[Informer]:
    """The informers that fill ``stores`` with the children, not started."""
    return [
        Informer(api_client, resource, stores.of(resource.kind), namespace=ns, on_event=on_event)
        for resource in CHILDREN
        for ns in informer_namespaces(namespaces)
    ]
