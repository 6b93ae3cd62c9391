"""Kubernetes gateway: reads the children of a TryOnModel and writes the few changes needed."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..api.builders import Owner
from ..api.errors import KubeConflictError, KubeError
from ..api.models import GROUP, KIND, PLURAL, VERSION
from ..api.vocabulary import (
    ANNOTATION_NOTIFIED,
    GPU,
    LABEL_COLOR,
    LABEL_INSTANCE,
    MANAGER,
    RESTARTED_AT,
)
from ..observe.parse import JsonObj, annotations_of, at, cluster_view, name_of, pod_gpus, quantity
from ..observe.views import ClusterView, GpuCapacity

T = TypeVar("T")


def kube_call(fn: Callable[[], T]) -> T:
    """Runs one client call; its errors as the domain's (409: ``KubeConflictError``)."""
    try:
        return fn()
    except ApiException as err:
        message = _api_message(err)
        if err.status == 409:
            raise KubeConflictError(message, status=409) from err
        raise KubeError(message, status=err.status) from err
    except (HTTPError, OSError) as err:
        raise KubeError(f"Kubernetes API unreachable: {err}") from err


def _api_message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except ValueError:
        return str(err.reason)


def _raw(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """One read as plain JSON: the client's model classes cost ~18x more CPU to build."""
    response = kube_call(lambda: fn(*args, _preload_content=False, **kwargs))
    body: dict[str, Any] = json.loads(response.data)
    return body


def _version(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    """One write; the resourceVersion of the object it left behind."""
    version = at(_raw(fn, *args, **kwargs), "metadata").get("resourceVersion")
    return str(version) if version is not None else None


def _read_or_none(fn: Callable[[], T]) -> T | None:
    try:
        return kube_call(fn)
    except KubeError as err:
        if err.status == 404:
            return None
        raise


KEDA_GROUP_VERSION = ("keda.sh", "v1alpha1")
KEDA_RECHECK_S = 60.0


class KubeGateway:
    """All Kubernetes API calls the operator makes go through here."""

    def __init__(self, api_client: client.ApiClient, *, crashloop_restarts: int = 3) -> None:
        self._api = api_client
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._autoscaling = client.AutoscalingV2Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._crashloop_restarts = crashloop_restarts
        self._keda_seen: tuple[float, bool] | None = None  # (when asked, served)

    # ------------------------------------------------------------------ reads

    def get_tryonmodel(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj: Any = _read_or_none(
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        )
        return dict(obj) if obj is not None else None

    def list_tryonmodels(self, namespace: str | None = None) -> list[dict[str, Any]]:
        result: Any
        if namespace:
            result = kube_call(
                lambda: self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                )
            )
        else:
            result = kube_call(
                lambda: self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            )
        return list(result.get("items", []))

    def observe(self, namespace: str, name: str) -> ClusterView:
        """Four reads: the instance's pods, Deployments and Services by label, and the HPA.

        The fresh path: the operator reads from its watch cache (``cache/``) and comes here only
        when the cache cannot be trusted for this object yet.
        """
        instance = f"{LABEL_INSTANCE}={name}"
        pods = _items(_raw(self._core.list_namespaced_pod, namespace, label_selector=instance))
        deployments = _raw(
            self._apps.list_namespaced_deployment, namespace, label_selector=instance
        )
        services = _raw(self._core.list_namespaced_service, namespace, label_selector=instance)
        children = [
            *({**d, "kind": "Deployment"} for d in _items(deployments)),
            *({**s, "kind": "Service"} for s in _items(services)),
        ]
        read = self._autoscaling.read_namespaced_horizontal_pod_autoscaler
        hpa = _read_or_none(lambda: _raw(read, name, namespace))
        if hpa is not None:
            children.append({**hpa, "kind": "HorizontalPodAutoscaler"})
        return cluster_view(name, children, pods, crashloop_restarts=self._crashloop_restarts)

    def gpu_capacity(self, node_selector: dict[str, str]) -> GpuCapacity:
        """GPUs on matching nodes and how many no scheduled pod holds (only on a GPU shortage)."""
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
        nodes = _items(_raw(self._core.list_node, label_selector=label_selector))
        names = {name_of(n) for n in nodes}
        allocatable = sum(
            quantity((at(n, "status").get("allocatable") or {}).get(GPU)) for n in nodes
        )
        try:
            pods = _items(
                _raw(
                    self._core.list_pod_for_all_namespaces,
                    field_selector="status.phase!=Succeeded,status.phase!=Failed",
                )
            )
        except KubeError as err:
            if err.status == 403:  # namespaced RBAC: other namespaces' pods are not ours to read
                return GpuCapacity(len(nodes), allocatable, None)
            raise
        held = sum(pod_gpus(p) for p in pods if at(p, "spec").get("nodeName") in names)
        return GpuCapacity(len(nodes), allocatable, max(allocatable - held, 0))

    # ------------------------------------------------------------------ writes
    # Each write returns the resourceVersion the API server gave the object (None: deleted or
    # absent), so the watch cache can tell when it has caught up with the operator's own writes.

    def restore_template(self, obj: dict[str, Any]) -> str | None:
        """Puts back a hand-edited pod template whole (apply would keep fields others added).

        A JSON patch that first tests the read resourceVersion: a concurrent writer makes it fail
        with a conflict, and the next reconcile looks again. The read is live on purpose (a
        named fresh read): the test op needs the version the API server has now.
        """
        meta = obj["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        live = _raw(self._apps.read_namespaced_deployment, name, namespace)
        template = json.loads(json.dumps(obj["spec"]["template"]))
        restarted = annotations_of(at(live, "spec", "template")).get(RESTARTED_AT)
        if restarted is not None:  # `kubectl rollout restart` is allowed, not a hand edit
            template["metadata"].setdefault("annotations", {})[RESTARTED_AT] = restarted
        ops = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": at(live, "metadata").get("resourceVersion"),
            },
            {"op": "replace", "path": "/spec/template", "value": template},
        ]
        try:
            return _version(
                self._apps.patch_namespaced_deployment,
                name,
                namespace,
                ops,
                field_manager=MANAGER,
                _content_type="application/json-patch+json",
            )
        except KubeError as err:
            if err.status == 422:  # the test op failed: someone wrote in between
                raise KubeConflictError(str(err), status=409) from err
            raise

    def apply(self, obj: dict[str, Any]) -> str | None:
        """Server-side apply of a whole child object (creates it when missing)."""
        meta = obj["metadata"]
        name, namespace, kind = meta["name"], meta["namespace"], obj["kind"]
        kwargs: dict[str, Any] = {
            "field_manager": MANAGER,
            "force": True,
            "_content_type": "application/apply-patch+yaml",
        }
        patch = {
            "Deployment": self._apps.patch_namespaced_deployment,
            "Service": self._core.patch_namespaced_service,
            "HorizontalPodAutoscaler": self._autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        }.get(kind)
        if patch is None:  # pragma: no cover - programming error
            raise ValueError(f"cannot apply kind {kind}")
        return _version(patch, name, namespace, obj, **kwargs)

    def scale(self, namespace: str, name: str, replicas: int) -> str | None:
        """The scale subresource answers with the Deployment's own resourceVersion.

        Scaling a Deployment that is gone to 0 is done already (someone deleted the old colour
        during its scale-down delay): not an error, or the rollout could never finish.
        """
        body = {"spec": {"replicas": replicas}}
        try:
            return _version(self._apps.patch_namespaced_deployment_scale, name, namespace, body)
        except KubeError as err:
            if err.status == 404 and replicas == 0:
                return None
            raise

    def set_selector_color(self, namespace: str, service: str, color: str) -> str | None:
        body = {"spec": {"selector": {LABEL_COLOR: color}}}
        return _version(self._core.patch_namespaced_service, service, namespace, body)

    def serves_scaled_objects(self) -> bool:
        """Whether the cluster serves KEDA's ScaledObject (discovery, asked at most once a
        minute: KEDA is installed or removed rarely, and a reconcile must not pay for asking)."""
        now = time.monotonic()
        if self._keda_seen is not None and now - self._keda_seen[0] < KEDA_RECHECK_S:
            return self._keda_seen[1]
        try:
            found: Any = kube_call(lambda: self._custom.get_api_resources(*KEDA_GROUP_VERSION))
            served = any(r.name == "scaledobjects" for r in found.resources or [])
        except KubeError as err:
            if err.status != 404:
                raise
            served = False
        self._keda_seen = (now, served)
        return served

    def apply_scaled_object(self, obj: dict[str, Any]) -> str | None:
        meta = obj["metadata"]
        return _version(
            self._custom.patch_namespaced_custom_object,
            *KEDA_GROUP_VERSION,
            meta["namespace"],
            "scaledobjects",
            meta["name"],
            obj,
            field_manager=MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def delete_scaled_object(self, namespace: str, name: str) -> None:
        try:
            kube_call(
                lambda: self._custom.delete_namespaced_custom_object(
                    *KEDA_GROUP_VERSION, namespace, "scaledobjects", name
                )
            )
        except KubeError as err:
            if err.status != 404:
                raise

    def delete_hpa(self, namespace: str, name: str) -> str | None:
        delete = self._autoscaling.delete_namespaced_horizontal_pod_autoscaler
        try:
            kube_call(lambda: delete(name, namespace))
        except KubeError as err:
            if err.status != 404:
                raise
        return None

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str | None:
        return _version(
            self._custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": status},
        )

    def remove_annotation(self, namespace: str, name: str, key: str) -> str | None:
        """Drops one annotation of a TryOnModel (a consumed request); a missing object is fine."""
        body = {"metadata": {"annotations": {key: None}}}
        try:
            return _version(
                self._custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
            )
        except KubeError as err:
            if err.status != 404:
                raise
            return None

    def emit_event(
        self, owner: Owner, type_: str, reason: str, message: str, key: str | None = None
    ) -> bool:
        """Posts an Event; False when one with the same ``key`` exists already.

        A ``key`` names the decision (reason, version, rollout): the Event's name is derived from
        it, so a decision redone after a crash or a lost Lease posts nothing new (409).
        """
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=event_name(owner, key), namespace=owner.namespace),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}",
                kind=KIND,
                name=owner.name,
                namespace=owner.namespace,
                uid=owner.uid,
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component=MANAGER),
            reporting_component=MANAGER,
            reporting_instance=MANAGER,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            kube_call(lambda: self._core.create_namespaced_event(owner.namespace, event))
        except KubeConflictError:
            return False  # told already, by this replica or the one before
        return True

    def event_notified(self, owner: Owner, key: str) -> bool:
        """Whether the Event of decision ``key`` says its notification is done with (a missing
        Event counts as done: there is nothing to tell it by)."""
        try:
            event = kube_call(
                lambda: self._core.read_namespaced_event(event_name(owner, key), owner.namespace)
            )
        except KubeError as err:
            if err.status == 404:
                return True
            raise
        annotations = event.metadata.annotations or {}
        return ANNOTATION_NOTIFIED in annotations

    def mark_event_notified(self, owner: Owner, key: str) -> None:
        body = {"metadata": {"annotations": {ANNOTATION_NOTIFIED: "true"}}}
        try:
            kube_call(
                lambda: self._core.patch_namespaced_event(
                    event_name(owner, key), owner.namespace, body
                )
            )
        except KubeError as err:
            if err.status != 404:
                raise


def event_name(owner: Owner, key: str | None) -> str:
    """A decision's Event name, derived from its key (a redone decision hits the same name);
    a random one without a key."""
    suffix = (
        hashlib.sha256(f"{owner.uid}/{key}".encode()).hexdigest()[:16]
        if key is not None
        else uuid.uuid4().hex[:16]
    )
    return f"{owner.name}.{suffix}"


def _items(listing: JsonObj) -> list[JsonObj]:
    return list(listing.get("items") or [])
