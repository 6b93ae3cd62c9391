"""The Lease that leader election runs on: its record, pure expiry logic, and the API calls.

``LeaseClient`` is a small gateway over ``coordination.k8s.io/v1`` Leases in the style of
``gateways/kube.py``: every ``ApiException`` becomes a domain error from ``errors.py`` (409 is
``KubeConflictError``: someone else wrote the Lease first). It reads and writes plain JSON, so
fields this operator does not know (``spec.strategy``, ``spec.preferredHolder``) survive an
update untouched.

Nothing here trusts clocks across hosts: ``renewTime`` is written for people
(``kubectl get lease``), while expiry is judged by ``lease_expired`` from the moment *this* process
last saw the record change (its own monotonic clock) plus the record's ``leaseDurationSeconds``,
as client-go's leaderelection does.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

from ...api.errors import KubeError
from ...gateways.kube import kube_call
from ...settings import OperatorSettings

T = TypeVar("T")
LEASE_NAME = "tryon-operator"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
COMPONENT = "tryon-operator"


@dataclass(frozen=True)
class ElectionConfig:
    """Who campaigns for which Lease, and the timings (lease > renew deadline > retry > 0)."""

    identity: str
    namespace: str
    name: str = LEASE_NAME
    lease_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_period_seconds: float = 2.0
    record_events: bool = True  # best-effort Events on the Lease on each leadership change
    # What the holder tells the others on the Lease's annotations (the webhook hand-over's
    # address, registry/handover.py); a None value is a key this replica has nothing for. Every
    # key is removed when the holder releases the Lease, so no one is sent to a replica gone.
    holder_annotations: Mapping[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lease_seconds > self.renew_deadline_seconds > self.retry_period_seconds > 0:
            raise ValueError(
                "leader election needs lease > renew deadline > retry period > 0, "
                f"got {self.lease_seconds} / {self.renew_deadline_seconds} / "
                f"{self.retry_period_seconds}"
            )

    @property
    def lease_annotations(self) -> dict[str, str]:
        """What the holder writes on the Lease besides the spec."""
        return {k: v for k, v in self.holder_annotations.items() if v is not None}

    @property
    def released_annotations(self) -> dict[str, None]:
        """What a release writes: every holder annotation removed."""
        return dict.fromkeys(self.holder_annotations)

    @classmethod
    def from_settings(
        cls, settings: OperatorSettings, holder_annotations: Mapping[str, str | None] | None = None
    ) -> ElectionConfig:
        """Identity and namespace defaults resolved (pod name or host-pid; SA namespace)."""
        return cls(
            identity=default_identity(settings.pod_name),
            namespace=default_namespace(settings.leader_election_namespace),
            lease_seconds=settings.leader_election_lease_seconds,
            renew_deadline_seconds=settings.leader_election_renew_deadline_seconds,
            retry_period_seconds=settings.leader_election_retry_period_seconds,
            holder_annotations=dict(holder_annotations or {}),
        )


def lease_api_client(base: client.ApiClient) -> client.ApiClient:
    """A client for the Lease alone: ``base``'s server and credentials, no urllib3 retries (the
    default three would outlast the renew deadline behind a black-holed connection; the elector
    retries by itself every retry period) and a pool of its own, so a renewal never queues behind
    reconciles holding every connection of the shared pool."""
    cfg = copy.deepcopy(base.configuration)
    cfg.retries = False
    cfg.connection_pool_maxsize = 2
    lease_client = client.ApiClient(cfg)
    lease_client.user_agent = base.user_agent  # the same replica in the audit log
    return lease_client


def default_identity(pod_name: str | None = None) -> str:
    """``TRYON_POD_NAME`` when set (the chart sets it from the downward API), else host-pid."""
    if pod_name:
        return pod_name
    return f"{socket.gethostname()}-{os.getpid()}"


def default_namespace(
    explicit: str | None = None, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str:
    """The Lease's namespace: the setting, else the ServiceAccount's (in a pod), else default."""
    if explicit:
        return explicit
    try:
        found = sa_file.read_text().strip()
    except OSError:
        found = ""
    return found or "default"


@dataclass(frozen=True)
class LeaseRecord:
    """What leader election reads from a Lease's spec (and its resourceVersion)."""

    holder: str | None
    lease_seconds: int | None
    acquire_time: str | None
    renew_time: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            lease_seconds=spec.get("leaseDurationSeconds"),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def same_spec(self, other: LeaseRecord | None) -> bool:
        """The record is unchanged (what an observer compares; resourceVersion aside)."""
        return other is not None and (
            self.holder,
            self.lease_seconds,
            self.acquire_time,
            self.renew_time,
            self.transitions,
        ) == (
            other.holder,
            other.lease_seconds,
            other.acquire_time,
            other.renew_time,
            other.transitions,
        )


def holder_annotation(lease: Mapping[str, Any], identity: str, key: str) -> str | None:
    """The holder's annotation ``key`` as written on ``lease`` (None: nobody holds it, the holder
    wrote none, or the holder is ``identity`` itself)."""
    holder = LeaseRecord.from_lease(lease).holder
    if holder in (None, identity):
        return None
    value = ((lease.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value else None


def lease_expired(
    record: LeaseRecord, observed_at: float, now: float, fallback_seconds: float
) -> bool:
    """A held Lease is expired once its duration has passed since this process saw it change.

    ``observed_at`` and ``now`` are this process's monotonic clock. A record without a usable
    ``leaseDurationSeconds`` counts with ``fallback_seconds`` (our own lease duration).
    """
    seconds = record.lease_seconds if record.lease_seconds and record.lease_seconds > 0 else None
    return now >= observed_at + (seconds if seconds is not None else fallback_seconds)


def watched_expiry(
    record: LeaseRecord | None, identity: str, observed_at: float, fallback_seconds: float
) -> float | None:
    """When (monotonic, just after) the Lease another replica holds would expire, as a standby
    judges it; None when nobody else holds it (the next look takes it anyway)."""
    if record is None or record.holder in (None, identity):
        return None
    return observed_at + (record.lease_seconds or fallback_seconds) + 0.01


def next_attempt_in(
    now: float,
    began: float,
    retry_period: float,
    *,
    fence: float | None = None,
    expires_at: float | None = None,
    jitter: float = 0.0,
) -> float:
    """Seconds until the next attempt: one retry period after this one ``began``.

    A leader passes its ``fence`` (when its renew deadline passes) and also wakes then, to step
    down on time. A standby adds ``jitter`` (so replicas do not ask in step) and also wakes at
    ``expires_at`` (``watched_expiry``), so a dead leader's Lease is taken when it expires, not up
    to a retry period later; the expiry rule itself is ``lease_expired``.
    """
    wait = began + retry_period - now
    if fence is not None:
        wait = min(wait, fence - now)
    else:
        wait += jitter
        if expires_at is not None:
            wait = min(wait, expires_at - now)
    return max(0.0, wait)


def free_for(record: LeaseRecord, identity: str, expired: bool) -> bool:
    """May ``identity`` write itself in as holder? Free, expired, or already ours."""
    return record.holder is None or record.holder == identity or expired


def micro_time(now: datetime | None = None) -> str:
    """A Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def held_spec(
    record: LeaseRecord | None, identity: str, lease_seconds: int, now: str
) -> dict[str, Any]:
    """The spec fields to write when ``identity`` takes or renews the Lease.

    A renewal keeps ``acquireTime`` and ``leaseTransitions``; a takeover (any other holder before,
    or none) sets ``acquireTime`` and counts one more transition.
    """
    if record is None:  # a Lease created now: its first holder, no transition yet
        acquired, transitions = now, 0
    elif record.holder == identity:
        acquired, transitions = record.acquire_time or now, record.transitions
    else:
        acquired, transitions = now, record.transitions + 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": lease_seconds,
        "acquireTime": acquired,
        "renewTime": now,
        "leaseTransitions": transitions,
    }


def released_spec(record: LeaseRecord, now: str) -> dict[str, Any]:
    """A graceful release: no holder and a 1 s duration, so a standby takes over at once."""
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": record.acquire_time or now,
        "renewTime": now,
        "leaseTransitions": record.transitions,
    }


def _json(fn: Callable[..., Any], *args: Any, timeout: float) -> dict[str, Any]:
    """One call, its answer as plain JSON, bounded by ``timeout`` seconds in all."""
    response = kube_call(lambda: fn(*args, _preload_content=False, _request_timeout=timeout))
    body: dict[str, Any] = json.loads(response.data)
    return body


class LeaseClient:
    """get / create / update of one Lease, as plain JSON; errors as ``KubeError``."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        self._coordination = client.CoordinationV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The Lease as the apiserver has it, or None when there is none."""
        try:
            return _json(
                self._coordination.read_namespaced_lease, self.name, self.namespace, timeout=timeout
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def create(
        self, spec: Mapping[str, Any], timeout: float, annotations: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Creates the Lease; ``KubeConflictError`` when another replica created it first."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": dict(spec),
        }
        return _json(
            self._coordination.create_namespaced_lease, self.namespace, lease, timeout=timeout
        )

    def update(
        self,
        lease: Mapping[str, Any],
        spec: Mapping[str, Any],
        timeout: float,
        annotations: Mapping[str, str] | Mapping[str, None] | None = None,
    ) -> dict[str, Any]:
        """PUT ``lease`` with ``spec`` (and ``annotations``; None removes one) merged in, guarded
        by its resourceVersion (409: lost)."""
        meta = dict(lease.get("metadata") or {})
        if annotations:
            merged = {**(meta.get("annotations") or {}), **annotations}
            meta["annotations"] = {k: v for k, v in merged.items() if v is not None}
        body = {**lease, "metadata": meta, "spec": {**(lease.get("spec") or {}), **spec}}
        return _json(
            self._coordination.replace_namespaced_lease,
            self.name,
            self.namespace,
            body,
            timeout=timeout,
        )

    def event(self, lease: Mapping[str, Any], reason: str, message: str, timeout: float) -> None:
        """A Normal Event on the Lease (``kubectl describe lease``); the caller treats it as
        best effort."""
        meta = lease.get("metadata") or {}
        now = datetime.now(UTC)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{self.name}.{uuid.uuid4().hex[:12]}",
                "namespace": self.namespace,
            },
            "involvedObject": {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "name": self.name,
                "namespace": self.namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        _json(self._core.create_namespaced_event, self.namespace, event, timeout=timeout)
