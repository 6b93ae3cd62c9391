"""Helpers for bench/operator_bench.py: API client, raw watches, process and apiserver meters.

Everything here is deliberately light: the benchmark runs on the same 2 shared cores as the control
plane and the controllers it measures, so watches parse JSON lines themselves (no client-model
deserialisation) and samplers read /proc once a second.
"""

from __future__ import annotations

import json
import math
import os
import re
import ssl
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION")
READ_VERBS = ("GET", "LIST")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- API client


class Api:
    """JSON over HTTPS to the local apiserver with the admin client certificate."""

    def __init__(self, server: str, pki: Path) -> None:
        self.server = server
        self.pki = pki
        self.client = httpx.Client(
            base_url=server, verify=self.ssl_context(), timeout=httpx.Timeout(30.0)
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ctype: str | None = None,
        ok: Iterable[int] = (),
    ) -> Any:
        headers = {"Content-Type": ctype or "application/json"}
        data = None if body is None else json.dumps(body)
        resp = self.client.request(method, path, content=data, headers=headers)
        if resp.status_code >= 400 and resp.status_code not in ok:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        return (
            resp.json()
            if resp.content and resp.headers.get("content-type", "").startswith("application/json")
            else None
        )

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: Mapping[str, Any]) -> None:
        """POST, treating 'already exists' as done (re-runs against a kept cluster)."""
        self.request("POST", path, obj, ok=(409,))

    def merge_patch(self, path: str, patch: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, patch, ctype="application/merge-patch+json")

    def metrics_text(self) -> str:
        resp = self.client.get("/metrics")
        resp.raise_for_status()
        return resp.text


def ns_path(namespace: str, plural: str, group: str = "", version: str = "v1") -> str:
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{base}/namespaces/{namespace}/{plural}"


# ----------------------------------------------------------------------------- watches


class RawWatch(threading.Thread):
    """Streams watch events of one collection (all namespaces) and hands each to ``on_event``.

    Reconnects from the last resourceVersion when the server closes the stream; the receive time
    (monotonic) is what every latency in the benchmark is measured with, for both controllers.
    """

    def __init__(
        self,
        api: Api,
        path: str,
        on_event: Callable[[str, dict[str, Any], float], None],
        label_selector: str = "",
    ) -> None:
        super().__init__(daemon=True, name=f"watch {path}")
        self.api, self.path, self.on_event, self.selector = api, path, on_event, label_selector
        self.stop = threading.Event()
        self.synced = threading.Event()

    def run(self) -> None:
        client = httpx.Client(
            base_url=self.api.server,
            verify=self.api.ssl_context(),
            timeout=httpx.Timeout(10.0, read=400.0),
        )
        rv = ""
        while not self.stop.is_set():
            params = {"labelSelector": self.selector} if self.selector else {}
            try:
                if not rv:
                    listing = client.get(self.path, params=params).json()
                    now = time.monotonic()
                    for item in listing.get("items", []):
                        self.on_event("ADDED", item, now)
                    rv = listing["metadata"]["resourceVersion"]
                    self.synced.set()
                params |= {
                    "watch": "1",
                    "resourceVersion": rv,
                    "timeoutSeconds": "300",
                    "allowWatchBookmarks": "true",
                }
                with client.stream("GET", self.path, params=params) as resp:
                    for line in resp.iter_lines():
                        if self.stop.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            rv = ""  # 410 Gone: list again
                            break
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if event.get("type") != "BOOKMARK":
                            self.on_event(event["type"], obj, time.monotonic())
            except (httpx.HTTPError, ValueError, KeyError):
                time.sleep(0.5)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


@dataclass
class PodRecord:
    namespace: str
    labels: dict[str, str]
    ready_at: float | None = None
    unready_at: float | None = None  # first Ready -> not Ready after having been Ready
    deleted: bool = False


@dataclass
class Flip:
    namespace: str
    service: str
    at: float
    old: dict[str, str]
    new: dict[str, str]
    last_ready: float | None  # newest ready_at among the pods the new selector picks


@dataclass
class Tracker:
    """What the benchmark knows of pods and Service selectors, fed by RawWatch threads."""

    pods: dict[str, PodRecord] = field(default_factory=dict)
    selectors: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    flips: list[Flip] = field(default_factory=list)
    deployments: dict[tuple[str, str], list[tuple[float, str, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_pod(self, kind: str, pod: dict[str, Any], now: float) -> None:
        meta = pod["metadata"]
        with self.lock:
            rec = self.pods.get(meta["uid"])
            if rec is None:
                rec = self.pods[meta["uid"]] = PodRecord(
                    meta["namespace"], dict(meta.get("labels") or {})
                )
            rec.labels = dict(meta.get("labels") or {})
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                rec.deleted = True
                return
            ready = pod_ready(pod)
            if ready and rec.ready_at is None:
                rec.ready_at = now
            elif not ready and rec.ready_at is not None and rec.unready_at is None:
                rec.unready_at = now

    def on_service(self, kind: str, svc: dict[str, Any], now: float) -> None:
        meta = svc["metadata"]
        key = (meta["namespace"], meta["name"])
        new = dict((svc.get("spec") or {}).get("selector") or {})
        with self.lock:
            if kind == "DELETED":
                self.selectors.pop(key, None)
                return
            old = self.selectors.get(key)
            self.selectors[key] = new
            if old is not None and old != new:
                picked = [
                    p.ready_at
                    for p in self.pods.values()
                    if p.namespace == key[0]
                    and not p.deleted
                    and p.ready_at is not None
                    and all(p.labels.get(k) == v for k, v in new.items())
                ]
                self.flips.append(
                    Flip(key[0], key[1], now, old, new, max(picked) if picked else None)
                )

    def on_deployment(self, kind: str, dep: dict[str, Any], now: float) -> None:
        meta = dep["metadata"]
        labels = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        version = labels.get("tryon.dev/model-version", "")
        replicas = int((dep.get("spec") or {}).get("replicas") or 0)
        with self.lock:
            seen = self.deployments[(meta["namespace"], meta["name"])]
            if not seen or seen[-1][1:] != (version, replicas):
                seen.append((now, version, replicas))

    def flips_since(self, since: float) -> list[Flip]:
        with self.lock:
            return [f for f in self.flips if f.at >= since]

    def selector(self, namespace: str, service: str) -> dict[str, str]:
        with self.lock:
            return dict(self.selectors.get((namespace, service)) or {})

    def first_scale_up(self, namespace: str, since: float, version: str) -> float | None:
        """When a Deployment in ``namespace`` was first seen pinned to ``version`` with pods."""
        with self.lock:
            times = [
                t
                for (ns, _), hist in self.deployments.items()
                if ns == namespace
                for t, v, r in hist
                if t >= since and v == version and r > 0
            ]
        return min(times) if times else None


# ----------------------------------------------------------------------------- meters


class ProcSampler(threading.Thread):
    """CPU seconds (utime+stime) and RSS of one process, read from /proc every ``period``."""

    def __init__(self, pid: int, period: float = 1.0) -> None:
        super().__init__(daemon=True, name=f"proc {pid}")
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float, float]] = []  # (t, cpu_s, rss_mib)
        self.stop = threading.Event()

    def read(self) -> tuple[float, float, float] | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(") ", 1)[1].split()
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        cpu = (int(stat[11]) + int(stat[12])) / CLK_TCK
        rss = next(
            (
                int(line.split()[1]) / 1024
                for line in status.splitlines()
                if line.startswith("VmRSS:")
            ),
            0.0,
        )
        return time.monotonic(), cpu, rss

    def run(self) -> None:
        while not self.stop.is_set():
            sample = self.read()
            if sample is None:
                return
            self.samples.append(sample)
            self.stop.wait(self.period)

    def window(self, start: float, end: float) -> tuple[float, float, float]:
        """(CPU share of one core, peak RSS MiB, last RSS MiB) between two monotonic times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return math.nan, math.nan, math.nan
        share = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
        return share, max(s[2] for s in inside), inside[-1][2]


_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def request_counts(metrics_text: str) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total summed by (verb, resource, subresource)."""
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for line in metrics_text.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        out[
            (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        ] += float(m["value"])
    return out


def diff_counts(
    before: Mapping[tuple[str, str, str], float], after: Mapping[tuple[str, str, str], float]
) -> dict[tuple[str, str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def count_calls(
    diff: Mapping[tuple[str, str, str], float],
    verbs: Iterable[str],
    resources: Mapping[str, Iterable[str] | None],
) -> float:
    """Calls with a verb in ``verbs`` on ``resources`` (resource -> allowed subresources or None
    for any)."""
    verbs = set(verbs)
    total = 0.0
    for (verb, resource, sub), n in diff.items():
        if verb not in verbs or resource not in resources:
            continue
        allowed = resources[resource]
        if allowed is None or sub in set(allowed):
            total += n
    return total


# ----------------------------------------------------------------------------- garbage collector

GC_PROBE_LABEL = "bench.tryon.dev/gc-probe"


def gc_probe(api_version: str, kind: str, namespace: str) -> dict[str, Any]:
    """A ConfigMap owned by a ``kind`` object that does not exist: the garbage collector deletes
    it once it can look such owners up."""
    tag = uuid.uuid4().hex[:8]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"gc-probe-{kind.lower()}-{tag}",
            "namespace": namespace,
            "labels": {GC_PROBE_LABEL: kind.lower()},
            "ownerReferences": [
                {"apiVersion": api_version, "kind": kind, "name": f"absent-{tag}", "uid": tag}
            ],
        },
    }


def wait_gc_knows(
    api: Api,
    api_version: str,
    kind: str,
    *,
    namespace: str = "default",
    timeout: float = 120.0,
    every: float = 2.0,
    poll: float = 0.5,
) -> float:
    """Blocks until kube-controller-manager's garbage collector resolves owner references to
    ``kind`` (a new CRD); returns the seconds it took.

    The collector rediscovers API resources every 30 s. Until it knows a new kind, the owner of
    each child created meanwhile stays unverified in its queue (retries back off exponentially),
    and once it knows the kind it GETs every such owner: a burst of GETs on the CRD's resource up
    to a minute after the objects were created, which the apiserver's request metric (no client
    label) puts on the controller's account in a steady-state window. A new probe every ``every``
    seconds, so one is always fresh in the collector's backoff; the rest are deleted at the end.
    """
    path = ns_path(namespace, "configmaps")
    selector = f"{GC_PROBE_LABEL}={kind.lower()}"
    started = time.monotonic()
    made: set[str] = set()
    renew = started
    try:
        while True:
            if time.monotonic() >= renew:
                probe = gc_probe(api_version, kind, namespace)
                api.create(path, probe)
                made.add(probe["metadata"]["name"])
                renew = time.monotonic() + every
            items = api.get(f"{path}?labelSelector={selector}")["items"]
            if made - {i["metadata"]["name"] for i in items}:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"the garbage collector did not resolve {kind} owners")
            time.sleep(poll)
    finally:
        api.request("DELETE", f"{path}?labelSelector={selector}", ok=(404,))
