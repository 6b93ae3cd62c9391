"""Which child events are worth a reconcile: a change to a field the reconcile reads.

A rollout of one object makes a dozen child events (pod scheduled, started, Ready; the Deployment
controller copying counts into its status; kwok or kubelet heartbeats). Most change nothing the
reconcile looks at, and in a wave of promotions each needless reconcile queues in front of a
needed one. The periodic resync stays the safety net for anything filtered out by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.vocabulary import ANNOTATION_TEMPLATE_HASH, LABEL_COLOR, LABEL_VERSION

Signature = tuple[Any, ...]


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
