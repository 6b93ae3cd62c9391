"""Pure parsing: Kubernetes objects as JSON -> the views in ``views.py``.

The same functions serve the live gateway and the watch cache, so both see the cluster alike. A
field read here must also be in ``wakeups.child_signature``, or a change to it waits for the
periodic resync.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..api.builders import deployment_name, preview_service_name
from ..api.models import COLORS, Color
from ..api.vocabulary import (
    ANNOTATION_TEMPLATE_HASH,
    GPU,
    LABEL_COLOR,
    LABEL_VERSION,
    MANAGER,
    RESTARTED_AT,
)
from .views import ClusterView, ColorView, HpaView, Observed, ServiceView

JsonObj = dict[str, Any]  # a Kubernetes object as the API server sent it

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


def cluster_view(
    name: str,
    children: Iterable[JsonObj],
    pods: Iterable[JsonObj],
    *,
    crashloop_restarts: int,
) -> ClusterView:
    """One TryOnModel's Deployments, Services and HPA (``children``) and renderer pods, as views."""
    by_kind: dict[tuple[str, str], JsonObj] = {
        (str(c.get("kind")), name_of(c)): c for c in children
    }
    pod_list = list(pods)
    views: dict[Color, ColorView] = {
        color: color_view(
            by_kind.get(("Deployment", deployment_name(name, color))),
            [p for p in pod_list if labels_of(p).get(LABEL_COLOR) == color],
            crashloop_restarts=crashloop_restarts,
        )
        for color in COLORS
    }
    return ClusterView(
        observed=Observed(blue=views["blue"], green=views["green"]),
        active_service=service_view(by_kind.get(("Service", name))),
        preview_service=service_view(by_kind.get(("Service", preview_service_name(name)))),
        hpa=hpa_view(by_kind.get(("HorizontalPodAutoscaler", name))),
    )


def color_view(dep: JsonObj | None, pods: list[JsonObj], *, crashloop_restarts: int) -> ColorView:
    """Pod counts come from the pods themselves, not the Deployment's status.

    The Deployment controller copies pod readiness into its status a moment later (seconds when it
    is busy); counting pods lets a promotion or a rollback act on what the Service's endpoints
    already reflect.
    """
    if dep is None:
        return ColorView()
    template = at(dep, "spec", "template")
    version = labels_of(template).get(LABEL_VERSION)
    template_hash = annotations_of(template).get(ANNOTATION_TEMPLATE_HASH)
    running = [p for p in pods if not at(p, "metadata").get("deletionTimestamp")]
    current = [
        p
        for p in running
        if labels_of(p).get(LABEL_VERSION) == version
        and annotations_of(p).get(ANNOTATION_TEMPLATE_HASH) == template_hash
    ]
    ready = sum(1 for p in running if pod_ready(p))
    unschedulable = [m for p in current if (m := unschedulable_message(p)) is not None]
    no_image = [m for p in current if (m := image_unavailable_message(p)) is not None]
    return ColorView(
        exists=True,
        replicas=int(at(dep, "spec").get("replicas") or 0),
        version=version,
        template_hash=template_hash,
        generation=int(at(dep, "metadata").get("generation") or 0),
        observed_generation=int(at(dep, "status").get("observedGeneration") or 0),
        status_replicas=len(running),
        updated_replicas=len(current),
        ready_replicas=ready,
        available_replicas=ready,  # the builder sets no minReadySeconds
        crashlooping_pods=sum(1 for p in current if crashlooping(p, crashloop_restarts)),
        unschedulable_pods=len(unschedulable),
        unschedulable_message=unschedulable[0] if unschedulable else "",
        scheduled_pods=sum(1 for p in current if at(p, "spec").get("nodeName")),
        gpu_short_pods=sum(1 for m in unschedulable if f"Insufficient {GPU}" in m),
        image_unavailable_pods=len(no_image),
        image_unavailable_message=no_image[0] if no_image else "",
        pods_refused_message=replica_failure_message(dep),
        foreign_template_managers=foreign_template_managers(dep),
    )


def service_view(svc: JsonObj | None) -> ServiceView:
    if svc is None:
        return ServiceView()
    spec = at(svc, "spec")
    ports = tuple((int(p["port"]), str(p.get("targetPort"))) for p in spec.get("ports") or [])
    return ServiceView(True, dict(spec.get("selector") or {}), ports)


def hpa_view(hpa: JsonObj | None) -> HpaView:
    if hpa is None:
        return HpaView()
    spec = at(hpa, "spec")
    return HpaView(
        True,
        (spec.get("scaleTargetRef") or {}).get("name"),
        spec.get("minReplicas"),
        spec.get("maxReplicas"),
    )


def crashlooping(pod: JsonObj, restarts: int) -> bool:
    for cs in at(pod, "status").get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            return True
        if int(cs.get("restartCount") or 0) >= restarts:
            return True
    return False


def quantity(value: object) -> int:
    """A whole-number resource quantity (GPUs); anything else counts as 0."""
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def pod_gpus(pod: JsonObj) -> int:
    total = 0
    for container in at(pod, "spec").get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        total += quantity(limits.get(GPU, requests.get(GPU)))
    return total


def foreign_template_managers(dep: JsonObj) -> tuple[str, ...]:
    """Field managers other than the operator that own part of the pod template.

    Server-side apply records who set each field; anyone else owning a template field (kubectl
    edit/set/patch, another controller) edited what the operator owns. A restart annotation from
    ``kubectl rollout restart`` is not counted.
    """
    found: set[str] = set()
    for entry in at(dep, "metadata").get("managedFields") or []:
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


def at(obj: Mapping[str, Any], *path: str) -> JsonObj:
    """The object under ``path``, or an empty one where any step is missing or null."""
    found: Any = obj
    for key in path:
        found = found.get(key) or {}
    return dict(found) if not isinstance(found, dict) else found


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = at(obj, "metadata").get("labels") or {}
    return found


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = at(obj, "metadata").get("annotations") or {}
    return found


def name_of(obj: Mapping[str, Any]) -> str:
    return str(at(obj, "metadata").get("name"))


def pod_ready(pod: JsonObj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in at(pod, "status").get("conditions") or []
    )


def unschedulable_message(pod: JsonObj) -> str | None:
    for cond in at(pod, "status").get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return str(cond.get("message") or "Unschedulable")
    return None


def replica_failure_message(dep: JsonObj) -> str:
    """The API server's words when it refused a colour's pods, from the Deployment's status.

    The ReplicaSet controller marks its ReplicaSet ``ReplicaFailure`` (reason ``FailedCreate``)
    at the first refused pod create, and the Deployment controller copies it to the Deployment
    within the same second; it is cleared once a create succeeds.
    """
    for cond in at(dep, "status").get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message") or cond.get("reason") or "ReplicaFailure")
    return ""


def image_unavailable_message(pod: JsonObj) -> str | None:
    """``<reason>: <kubelet message>`` for the first container stuck on its image, else None."""
    for cs in at(pod, "status").get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in IMAGE_WAITING_REASONS:
            message = waiting.get("message")
            return f"{reason}: {message}" if message else str(reason)
    return None
