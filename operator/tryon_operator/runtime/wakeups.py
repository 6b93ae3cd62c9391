"""Why an object reconciles: which watch events wake which TryOnModel's loop.

A TryOnModel event wakes it when a person changed it (spec, annotations, labels, deletion), not
on the operator's own status writes. A child event (Deployment, Service, Pod) wakes its owner when
a field the reconcile reads changed.

A rollout of one object makes a dozen child events (pod scheduled, started, Ready; the Deployment
controller copying counts into its status; kwok or kubelet heartbeats). Most change nothing the
reconcile looks at, and in a wave of promotions each needless reconcile queues in front of a
needed one. The periodic resync stays the safety net for anything filtered out by mistake.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.models import GROUP, KIND
from ..api.vocabulary import ANNOTATION_TEMPLATE_HASH, LABEL_COLOR, LABEL_INSTANCE, LABEL_VERSION
from ..gateways.cache.store import Store
from ..registry.watchers import ModelWatchers
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

Signature = tuple[Any, ...]
# Children whose changes wake their owner. HPAs are cached but wake nothing: the
# controller-manager rewrites their status every 15 s.
WAKING_KINDS = frozenset({"Deployment", "Service", "Pod"})


def owner_of(meta: Mapping[str, Any]) -> str | None:
    """The TryOnModel a child belongs to: its controller reference, else its instance label.

    Deployments carry both; pods (owned by a ReplicaSet) only the label.
    """
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("apiVersion", "").startswith(GROUP + "/"):
            return str(ref["name"])
    labels: Mapping[str, str] = meta.get("labels") or {}
    return labels.get(LABEL_INSTANCE)


def wants_a_look(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A change a person made (spec, annotations, labels, deletion); not our own status write."""

    def essence(body: Mapping[str, Any]) -> tuple[Any, ...]:
        meta = body.get("metadata") or {}
        return (
            meta.get("generation"),
            meta.get("annotations"),
            meta.get("labels"),
            meta.get("deletionTimestamp"),
        )

    return essence(old) != essence(new)


def child_signature(body: Mapping[str, Any]) -> Signature | None:
    """The parts of a child the reconcile reads; None for a kind it does not know."""
    kind = body.get("kind")
    meta = body.get("metadata") or {}
    owners = tuple(sorted(str(o.get("uid")) for o in meta.get("ownerReferences") or []))
    if kind == "Pod":
        return _pod_signature(body, meta)
    if kind == "Deployment":
        spec, status = body.get("spec") or {}, body.get("status") or {}
        managers = tuple(
            sorted(
                (str(m.get("manager")), str(m.get("operation")), str(m.get("subresource", "")))
                for m in meta.get("managedFields") or []
            )
        )
        return (
            meta.get("generation"),
            _frozen(meta.get("labels")),
            _frozen(meta.get("annotations")),
            owners,
            spec.get("replicas"),
            status.get("observedGeneration"),
            managers,
            tuple(
                (str(c.get("status")), str(c.get("message")))
                for c in status.get("conditions") or []
                if c.get("type") == "ReplicaFailure"
            ),
        )
    if kind == "Service":
        spec = body.get("spec") or {}
        ports = tuple(
            (p.get("name"), p.get("port"), str(p.get("targetPort")))
            for p in spec.get("ports") or []
        )
        return (_frozen(meta.get("labels")), owners, _frozen(spec.get("selector")), ports)
    return None


def _pod_signature(body: Mapping[str, Any], meta: Mapping[str, Any]) -> Signature:
    labels = meta.get("labels") or {}
    status = body.get("status") or {}
    conditions = tuple(
        sorted(
            (str(c.get("type")), str(c.get("status")), str(c.get("reason")), str(c.get("message")))
            for c in status.get("conditions") or []
            if c.get("type") in ("Ready", "PodScheduled")
        )
    )
    containers = tuple(
        (cs.get("name"), cs.get("ready"), cs.get("restartCount"), *_waiting(cs))
        for cs in status.get("containerStatuses") or []
    )
    return (
        labels.get(LABEL_VERSION),
        labels.get(LABEL_COLOR),
        (meta.get("annotations") or {}).get(ANNOTATION_TEMPLATE_HASH),
        bool(meta.get("deletionTimestamp")),
        (body.get("spec") or {}).get("nodeName"),
        conditions,
        containers,
    )


def _waiting(container_status: Mapping[str, Any]) -> tuple[Any, Any]:
    """Reason and message of a waiting container: a crash loop, or an image it cannot get."""
    waiting = (container_status.get("state") or {}).get("waiting") or {}
    return waiting.get("reason"), waiting.get("message")


def _frozen(mapping: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in (mapping or {}).items()))


class ChildChanges:
    """Remembers each child's last signature (by uid) to tell real changes from noise.

    Only the event loop thread touches it (kopf handlers are coroutines), so it needs no lock.
    """

    def __init__(self) -> None:
        self._seen: dict[str, Signature] = {}

    def worth_a_reconcile(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if event_type == "DELETED":
            self._seen.pop(uid, None)
            return True
        signature = child_signature(body)
        if signature is None or not uid:
            return True
        if self._seen.get(uid) == signature:
            return False
        self._seen[uid] = signature
        return True

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True, kw_only=True)
class Wakeups:
    """Routes watch events to the work queue, on the event loop: kopf's TryOnModel watch and the
    child informers (whose threads hop onto the loop first)."""

    queue: WorkQueue
    tryonmodels: Store
    watchers: ModelWatchers
    changes: ChildChanges = field(default_factory=ChildChanges)

    def tryonmodel_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Keeps the cache, and the object's loop, current."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if event_type == "DELETED":
            self.tryonmodels.remove(body)
            self.queue.forget(namespace, name)
            self.watchers.forget((namespace, name))
            return
        old = self.tryonmodels.upsert(copy.deepcopy(dict(body)))
        self.queue.ensure(namespace, name)
        if old is not None and wants_a_look(old, body):
            self.queue.poke(namespace, name)

    def child_changed(self, event_type: str, obj: dict[str, Any]) -> None:
        """Pokes the owner's loop for a change worth a reconcile."""
        if obj.get("kind") not in WAKING_KINDS:
            return
        meta = obj.get("metadata") or {}
        owner = owner_of(meta)
        worth = bool(owner) and self.changes.worth_a_reconcile(event_type, obj)
        log.debug(
            "child %s %s %s/%s rv=%s: %s",
            event_type,
            obj.get("kind"),
            meta.get("namespace"),
            meta.get("name"),
            meta.get("resourceVersion"),
            "poke" if worth else "no change that matters",
        )
        if worth and owner:
            self.queue.poke(str(meta.get("namespace") or ""), owner)
