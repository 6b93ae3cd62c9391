"""The few Kubernetes calls ``tryonctl`` makes, with API errors turned into one-line messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from ..api.models import COLORS, GROUP, KIND, PLURAL, VERSION
from ..gateways.client import make_api_client
from .views import EventLine, Pods

T = TypeVar("T")


class CtlError(Exception):
    """Something the user must fix or know; printed as ``error: ...`` with exit code 1."""


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ApiException as err:
        if err.status == 404:
            raise CtlError(f"{what}: not found") from err
        if err.status in (401, 403):
            raise CtlError(f"{what}: not allowed ({err.reason})") from err
        raise CtlError(f"{what}: API error {err.status} {err.reason}") from err
    except (HTTPError, OSError) as err:
        raise CtlError(f"{what}: cannot reach the Kubernetes API ({err})") from err


def _context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace the kubeconfig's chosen (else current) context names; "default" without one,
    or in a pod."""
    try:
        contexts, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except ConfigException:
        return "default"
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    return str((chosen or {}).get("context", {}).get("namespace") or "default")


class Cluster:
    """A kubeconfig context (``--kubeconfig`` / ``KUBECONFIG``, ``--context``), else in-cluster."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        try:
            api = make_api_client(
                kubeconfig, context=context, in_cluster_first=False, pool_size=None, user_agent=None
            )
        except ConfigException as err:
            if kubeconfig or context:
                raise CtlError(f"kubeconfig: {err}") from err
            raise CtlError(
                "no Kubernetes configuration: set KUBECONFIG or pass --kubeconfig"
            ) from err
        self.default_namespace = _context_namespace(kubeconfig, context)
        self._custom = client.CustomObjectsApi(api)
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        body: Any = _call(
            f"tryonmodel {namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            ),
        )
        return dict(body)

    def list_models(self, namespace: str | None) -> list[dict[str, Any]]:
        result: Any
        if namespace is None:
            result = _call(
                "tryonmodels",
                lambda: self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL),
            )
        else:
            result = _call(
                f"tryonmodels in {namespace}",
                lambda: self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                ),
            )
        return list(result.get("items", []))

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """A merge patch of the TryOnModel (annotations, ``spec.paused``)."""
        _call(
            f"tryonmodel {namespace}/{name}",
            lambda: self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body
            ),
        )

    def pods(self, namespace: str, name: str) -> dict[str, Pods]:
        """Ready/desired pods of each colour's Deployment that exists."""
        out: dict[str, Pods] = {}
        for color in COLORS:
            try:
                dep: Any = _call(
                    "deployment",
                    lambda c=color: self._apps.read_namespaced_deployment(  # type: ignore[misc]
                        f"{name}-{c}", namespace
                    ),
                )
            except CtlError:
                continue  # missing or unreadable: the status view just leaves the count out
            out[color] = Pods(int(dep.status.ready_replicas or 0), int(dep.spec.replicas or 0))
        return out

    def events(self, namespace: str, name: str, limit: int) -> list[EventLine]:
        """The TryOnModel's last ``limit`` Events, oldest first."""
        try:
            items: Any = _call(
                "events",
                lambda: self._core.list_namespaced_event(
                    namespace,
                    field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}",
                ),
            )
        except CtlError:
            return []  # Events are a courtesy; no read access to them is no reason to fail

        def order(e: Any) -> tuple[datetime, int]:
            at = e.last_timestamp or e.event_time or e.metadata.creation_timestamp
            version = str(e.metadata.resource_version or "")
            # Timestamps have 1 s resolution; the resource version orders within a second.
            return (
                at or datetime.min.replace(tzinfo=UTC),
                int(version) if version.isdigit() else 0,
            )

        lines = [
            EventLine(
                order(e)[0], e.type or "", e.reason or "", (e.message or "").replace("\n", " ")
            )
            for e in sorted(items.items, key=order)
        ]
        return lines[-limit:] if limit > 0 else []
