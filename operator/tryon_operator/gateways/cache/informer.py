"""List, then watch: one thread per kind (and namespace) keeps a ``Store`` current.

Like client-go's reflector, in the small: a LIST gives the state and a resourceVersion, a WATCH
from there gives every change; a watch that ends is resumed from the last version seen (bookmarks
keep it fresh), and a 410 Gone (the version was compacted away) or any error means a new LIST.
Objects are trimmed before they are stored (``trim``): the operator keeps what it reads, not
every pod's managed fields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from .store import JsonObj, Store, version_of

log = logging.getLogger(__name__)

OnEvent = Callable[[str, JsonObj], None]  # event type (ADDED/MODIFIED/DELETED), object
WATCH_SECONDS = (240, 300)  # server-side timeout per watch, spread so they do not end together


@dataclass(frozen=True)
class Resource:
    kind: str
    api: str  # "/api/v1" or "/apis/<group>/<version>"
    plural: str
    label_selector: str
    trim: Callable[[JsonObj], JsonObj] = lambda obj: obj

    def path(self, namespace: str | None) -> str:
        if namespace:
            return f"{self.api}/namespaces/{namespace}/{self.plural}"
        return f"{self.api}/{self.plural}"


class WatchExpiredError(Exception):
    """410 Gone: the resourceVersion is older than the API server keeps; list again."""


class Informer:
    """Keeps ``store`` equal to the API server's objects of ``resource`` in ``namespace``."""

    def __init__(
        self,
        api_client: client.ApiClient,
        resource: Resource,
        store: Store,
        *,
        namespace: str | None = None,
        on_event: OnEvent | None = None,
    ) -> None:
        self._api = api_client
        self.resource = resource
        self.store = store
        self.namespace = namespace
        self._on_event = on_event or (lambda _type, _obj: None)
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{resource.plural}-{namespace or 'all'}", daemon=True
        )
        self.relists = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the watch now: ``shutdown`` interrupts the read blocked on another thread (a plain
        ``close`` would wait for it)."""
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # the socket may be closing already
                response.shutdown()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stopping.is_set():
                    version = self._watch(version)
            except WatchExpiredError:
                log.info("%s watch expired; listing again", self.resource.plural)
            except Exception as err:
                if self._stopping.is_set():
                    return
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.warning(
                    "%s watch failed (%s); listing again in %.1fs", self.resource.plural, err, delay
                )
                self._stopping.wait(delay)

    def _request(self, query: list[tuple[str, Any]], timeout: float) -> Any:
        """One GET, streamed (the urllib3 response); an HTTP error becomes an exception."""
        method, url, headers, _body, _post = self._api.param_serialize(
            "GET",
            self.resource.path(self.namespace),
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(method, url, headers, _request_timeout=(10, timeout))
        raw = response.response
        if response.status == 410:
            raw.release_conn()
            raise WatchExpiredError("resourceVersion too old")
        if response.status >= 400:
            detail = raw.data[:300].decode(errors="replace")
            raw.release_conn()
            raise RuntimeError(f"HTTP {response.status} for {self.resource.plural}: {detail}")
        return raw

    def _list(self) -> str:
        self.relists += 1
        response = self._request([("labelSelector", self.resource.label_selector)], 60)
        listing = json.loads(response.data)
        items = [self._trimmed(item) for item in listing.get("items") or []]
        dropped = self.store.replace(items, self.namespace)
        if self.relists > 1:  # after a gap: tell about what may have changed meanwhile
            for obj in dropped:
                self._on_event("DELETED", obj)
            for obj in items:
                self._on_event("MODIFIED", obj)
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        seconds = random.randint(*WATCH_SECONDS)
        query = [
            ("labelSelector", self.resource.label_selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", seconds),
        ]
        self._response = response = self._request(query, seconds + 30)
        try:
            for line in response:
                if self._stopping.is_set():
                    break
                if line.strip():
                    version = self._handle(json.loads(line), version)
        finally:
            self._response = None
            response.release_conn()
        return version

    def _handle(self, event: dict[str, Any], version: str) -> str:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise WatchExpiredError(obj.get("message"))
            raise RuntimeError(f"watch error: {obj.get('message')}")
        new_version = version_of(obj) or version
        if kind == "BOOKMARK":
            return new_version
        obj = self._trimmed(obj)
        if kind == "DELETED":
            self.store.remove(obj)
        else:
            self.store.upsert(obj)
        self._on_event(str(kind), obj)
        return new_version

    def _trimmed(self, obj: JsonObj) -> JsonObj:
        obj.setdefault("kind", self.resource.kind)
        return self.resource.trim(obj)


def without_managed_fields(obj: JsonObj) -> JsonObj:
    """Pods and Services: nothing the operator reads is in managedFields (Deployments keep them:
    hand edits are found there)."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    return obj


def slim_pod(obj: JsonObj) -> JsonObj:
    """Renderer pods: metadata (no managedFields), status, and of the spec only what is read.

    The views read a pod's node (scheduled or not), its containers' GPU resources and its whole
    status; the rest of the spec (env, probes, volumes, affinity) is most of a pod's size, and at
    1,000 TryOnModels the store holds 2,000+ pods.
    """
    without_managed_fields(obj)
    spec = obj.get("spec") or {}
    containers = [
        {"name": c.get("name"), "resources": c.get("resources") or {}}
        for c in spec.get("containers") or []
    ]
    obj["spec"] = {"nodeName": spec.get("nodeName"), "containers": containers}
    return obj


def wait_synced(informers: list[Informer], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for informer in informers:
        if not informer.store.synced.wait(max(deadline - time.monotonic(), 0)):
            return False
    return True
