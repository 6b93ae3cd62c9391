"""Kubernetes gateway: reads the children of a TryOnModel and writes the few changes needed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..builders import (
    ANNOTATION_TEMPLATE_HASH,
    LABEL_COLOR,
    LABEL_INSTANCE,
    LABEL_VERSION,
    MANAGER,
    Owner,
    deployment_name,
    preview_service_name,
)
from ..decision import ColorView, Observed
from ..errors import KubeConflictError, KubeError
from ..models import COLORS, GROUP, KIND, PLURAL, VERSION, Color

T = TypeVar("T")
JsonObj = dict[str, Any]  # a Kubernetes object as the API server sent it


@dataclass(frozen=True)
class ServiceView:
    exists: bool = False
    selector: dict[str, str] = field(default_factory=dict)
    ports: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class HpaView:
    exists: bool = False
    target: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None


@dataclass(frozen=True)
class GpuCapacity:
    """nvidia.com/gpu on the nodes a renderer may run on (``free`` None: pods unreadable)."""

    nodes: int
    allocatable: int
    free: int | None


@dataclass(frozen=True)
class ClusterView:
    """Everything a reconcile needs to know about the children, read in one go."""

    observed: Observed
    active_service: ServiceView
    preview_service: ServiceView
    hpa: HpaView


def _call(fn: Callable[[], T]) -> T:
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
    response = _call(lambda: fn(*args, _preload_content=False, **kwargs))
    body: dict[str, Any] = json.loads(response.data)
    return body


def _read_or_none(fn: Callable[[], T]) -> T | None:
    try:
        return _call(fn)
    except KubeError as err:
        if err.status == 404:
            return None
        raise


class KubeGateway:
    """All Kubernetes API calls the operator makes go through here."""

    def __init__(self, api_client: client.ApiClient, *, crashloop_restarts: int = 3) -> None:
        self._api = api_client
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._autoscaling = client.AutoscalingV2Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._crashloop_restarts = crashloop_restarts

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
            result = _call(
                lambda: self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                )
            )
        else:
            result = _call(lambda: self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL))
        return list(result.get("items", []))

    def observe(self, namespace: str, name: str) -> ClusterView:
        """Four reads: the instance's pods, Deployments and Services by label, and the HPA.

        Lists by the instance label instead of one GET per child: fewer round trips per reconcile,
        which is what a wave of simultaneous promotions queues on.
        """
        instance = f"{LABEL_INSTANCE}={name}"
        pods = _items(_raw(self._core.list_namespaced_pod, namespace, label_selector=instance))
        deployments = {
            _name(d): d
            for d in _items(
                _raw(self._apps.list_namespaced_deployment, namespace, label_selector=instance)
            )
        }
        services = {
            _name(s): s
            for s in _items(
                _raw(self._core.list_namespaced_service, namespace, label_selector=instance)
            )
        }
        views: dict[Color, ColorView] = {
            color: self._color_view(
                deployments.get(deployment_name(name, color)),
                [p for p in pods if _pod_color(p) == color],
            )
            for color in COLORS
        }
        return ClusterView(
            observed=Observed(blue=views["blue"], green=views["green"]),
            active_service=_service_view(services.get(name)),
            preview_service=_service_view(services.get(preview_service_name(name))),
            hpa=self._hpa_view(namespace, name),
        )

    def _color_view(self, dep: JsonObj | None, pods: list[JsonObj]) -> ColorView:
        """Pod counts come from the pods themselves, not the Deployment's status.

        The Deployment controller copies pod readiness into its status a moment later (seconds
        when it is busy); counting pods lets a promotion or a rollback act on what the Service's
        endpoints already reflect. A field read here must also be in ``wakeups.child_signature``,
        or a change to it waits for the periodic resync.
        """
        if dep is None:
            return ColorView()
        template = _at(dep, "spec", "template")
        version = _labels(template).get(LABEL_VERSION)
        template_hash = _annotations(template).get(ANNOTATION_TEMPLATE_HASH)
        running = [p for p in pods if not _at(p, "metadata").get("deletionTimestamp")]
        current = [
            p
            for p in running
            if _labels(p).get(LABEL_VERSION) == version
            and _annotations(p).get(ANNOTATION_TEMPLATE_HASH) == template_hash
        ]
        ready = sum(1 for p in running if _pod_ready(p))
        crashlooping = sum(1 for p in current if self._crashlooping(p))
        unschedulable = [m for p in current if (m := _unschedulable(p)) is not None]
        no_image = [m for p in current if (m := _image_unavailable(p)) is not None]
        scheduled = sum(1 for p in current if _at(p, "spec").get("nodeName"))
        st = _at(dep, "status")
        return ColorView(
            exists=True,
            replicas=int(_at(dep, "spec").get("replicas") or 0),
            version=version,
            template_hash=template_hash,
            generation=int(_at(dep, "metadata").get("generation") or 0),
            observed_generation=int(st.get("observedGeneration") or 0),
            status_replicas=len(running),
            updated_replicas=len(current),
            ready_replicas=ready,
            available_replicas=ready,  # the builder sets no minReadySeconds
            crashlooping_pods=crashlooping,
            unschedulable_pods=len(unschedulable),
            unschedulable_message=unschedulable[0] if unschedulable else "",
            scheduled_pods=scheduled,
            gpu_short_pods=sum(1 for m in unschedulable if f"Insufficient {GPU}" in m),
            image_unavailable_pods=len(no_image),
            image_unavailable_message=no_image[0] if no_image else "",
            foreign_template_managers=_foreign_template_managers(dep),
        )

    def _crashlooping(self, pod: JsonObj) -> bool:
        for cs in _at(pod, "status").get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff":
                return True
            if int(cs.get("restartCount") or 0) >= self._crashloop_restarts:
                return True
        return False

    def _hpa_view(self, namespace: str, name: str) -> HpaView:
        read = self._autoscaling.read_namespaced_horizontal_pod_autoscaler
        hpa = _read_or_none(lambda: _raw(read, name, namespace))
        if hpa is None:
            return HpaView()
        spec = _at(hpa, "spec")
        return HpaView(
            True,
            (spec.get("scaleTargetRef") or {}).get("name"),
            spec.get("minReplicas"),
            spec.get("maxReplicas"),
        )

    def gpu_capacity(self, node_selector: dict[str, str]) -> GpuCapacity:
        """GPUs on matching nodes and how many no scheduled pod holds (only on a GPU shortage)."""
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
        nodes = _items(_raw(self._core.list_node, label_selector=label_selector))
        names = {_name(n) for n in nodes}
        allocatable = sum(
            _quantity((_at(n, "status").get("allocatable") or {}).get(GPU)) for n in nodes
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
        held = sum(_pod_gpus(p) for p in pods if _at(p, "spec").get("nodeName") in names)
        return GpuCapacity(len(nodes), allocatable, max(allocatable - held, 0))

    # ------------------------------------------------------------------ writes

    def restore_template(self, obj: dict[str, Any]) -> None:
        """Puts back a hand-edited pod template whole (apply would keep fields others added).

        A JSON patch that first tests the read resourceVersion: a concurrent writer makes it fail
        with a conflict, and the next reconcile looks again.
        """
        meta = obj["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        live = _raw(self._apps.read_namespaced_deployment, name, namespace)
        template = json.loads(json.dumps(obj["spec"]["template"]))
        restarted = _annotations(_at(live, "spec", "template")).get(RESTARTED_AT)
        if restarted is not None:  # `kubectl rollout restart` is allowed, not a hand edit
            template["metadata"].setdefault("annotations", {})[RESTARTED_AT] = restarted
        ops = [
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": _at(live, "metadata").get("resourceVersion"),
            },
            {"op": "replace", "path": "/spec/template", "value": template},
        ]
        try:
            _call(
                lambda: self._apps.patch_namespaced_deployment(
                    name,
                    namespace,
                    ops,
                    field_manager=MANAGER,
                    _content_type="application/json-patch+json",
                )
            )
        except KubeError as err:
            if err.status == 422:  # the test op failed: someone wrote in between
                raise KubeConflictError(str(err), status=409) from err
            raise

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply of a whole child object (creates it when missing)."""
        meta = obj["metadata"]
        name, namespace, kind = meta["name"], meta["namespace"], obj["kind"]
        kwargs: dict[str, Any] = {
            "field_manager": MANAGER,
            "force": True,
            "_content_type": "application/apply-patch+yaml",
        }
        if kind == "Deployment":
            _call(lambda: self._apps.patch_namespaced_deployment(name, namespace, obj, **kwargs))
        elif kind == "Service":
            _call(lambda: self._core.patch_namespaced_service(name, namespace, obj, **kwargs))
        elif kind == "HorizontalPodAutoscaler":
            _call(
                lambda: self._autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    name, namespace, obj, **kwargs
                )
            )
        else:  # pragma: no cover - programming error
            raise ValueError(f"cannot apply kind {kind}")

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        _call(lambda: self._apps.patch_namespaced_deployment_scale(name, namespace, body))

    def set_selector_color(self, namespace: str, service: str, color: str) -> None:
        body = {"spec": {"selector": {LABEL_COLOR: color}}}
        _call(lambda: self._core.patch_namespaced_service(service, namespace, body))

    def delete_hpa(self, namespace: str, name: str) -> None:
        try:
            _call(
                lambda: self._autoscaling.delete_namespaced_horizontal_pod_autoscaler(
                    name, namespace
                )
            )
        except KubeError as err:
            if err.status != 404:
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        _call(
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        )

    def remove_annotation(self, namespace: str, name: str, key: str) -> None:
        """Drops one annotation of a TryOnModel (a consumed request); a missing object is fine."""
        body = {"metadata": {"annotations": {key: None}}}
        try:
            _call(
                lambda: self._custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, body
                )
            )
        except KubeError as err:
            if err.status != 404:
                raise

    def emit_event(self, owner: Owner, type_: str, reason: str, message: str) -> None:
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{owner.name}.{uuid.uuid4().hex[:16]}", namespace=owner.namespace
            ),
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
        _call(lambda: self._core.create_namespaced_event(owner.namespace, event))


GPU = "nvidia.com/gpu"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# The kubelet's waiting reasons for a container that cannot get its image (pkg/kubelet/images,
# plus the CRI's SignatureValidationFailed): scheduled pods that cannot start until it is there.
IMAGE_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImageInspectError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)


def _quantity(value: Any) -> int:
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _pod_gpus(pod: JsonObj) -> int:
    total = 0
    for container in _at(pod, "spec").get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        total += _quantity(limits.get(GPU, requests.get(GPU)))
    return total


def _foreign_template_managers(dep: JsonObj) -> tuple[str, ...]:
    """Field managers other than the operator that own part of the pod template.

    Server-side apply records who set each field; anyone else owning a template field (kubectl
    edit/set/patch, another controller) edited what the operator owns. A restart annotation from
    ``kubectl rollout restart`` is not counted.
    """
    found: set[str] = set()
    for entry in _at(dep, "metadata").get("managedFields") or []:
        if entry.get("manager") == MANAGER:
            continue
        template = ((entry.get("fieldsV1") or {}).get("f:spec") or {}).get("f:template")
        if template and _owns_more_than_restart(template):
            found.add(str(entry.get("manager") or "unknown"))
    return tuple(sorted(found))


def _owns_more_than_restart(template: dict[str, Any]) -> bool:
    """True when a managedFields subtree holds any leaf but the restart annotation."""
    allowed = ("f:metadata", "f:annotations", f"f:{RESTARTED_AT}")

    def leaves(tree: dict[str, Any], path: tuple[str, ...]) -> bool:
        for key, sub in tree.items():
            if key == ".":
                continue
            here = (*path, key)
            if sub and isinstance(sub, dict):
                if leaves(sub, here):
                    return True
            elif here != allowed:
                return True
        return False

    return leaves(template, ())


def _items(listing: JsonObj) -> list[JsonObj]:
    return list(listing.get("items") or [])


def _at(obj: JsonObj, *path: str) -> JsonObj:
    """The object under ``path``, or an empty one where any step is missing or null."""
    for key in path:
        obj = obj.get(key) or {}
    return obj


def _labels(obj: JsonObj) -> dict[str, str]:
    labels: dict[str, str] = _at(obj, "metadata").get("labels") or {}
    return labels


def _annotations(obj: JsonObj) -> dict[str, str]:
    annotations: dict[str, str] = _at(obj, "metadata").get("annotations") or {}
    return annotations


def _name(obj: JsonObj) -> str:
    return str(_at(obj, "metadata").get("name"))


def _service_view(svc: JsonObj | None) -> ServiceView:
    if svc is None:
        return ServiceView()
    spec = _at(svc, "spec")
    ports = tuple((int(p["port"]), str(p.get("targetPort"))) for p in spec.get("ports") or [])
    return ServiceView(True, dict(spec.get("selector") or {}), ports)


def _pod_color(pod: JsonObj) -> str | None:
    return _labels(pod).get(LABEL_COLOR)


def _pod_ready(pod: JsonObj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in _at(pod, "status").get("conditions") or []
    )


def _unschedulable(pod: JsonObj) -> str | None:
    for cond in _at(pod, "status").get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "Unschedulable")
    return None


def _image_unavailable(pod: JsonObj) -> str | None:
    """``<reason>: <kubelet message>`` for the first container stuck on its image, else None."""
    for cs in _at(pod, "status").get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in IMAGE_WAITING_REASONS:
            message = waiting.get("message")
            return f"{reason}: {message}" if message else str(reason)
    return None
