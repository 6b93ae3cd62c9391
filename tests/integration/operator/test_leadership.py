"""Leader election against the real control plane: one leader out of two, a standby that only
reads the Lease, a graceful hand-over within a retry period, a leader cut off from the apiserver
that stops leading before anyone can take over, and a kill -9 / SIGSTOP of a leader process.

No API is mocked. Requests are counted at the client (``ApiClient.call_api``), and "unreachable"
is a TCP proxy in front of the apiserver that turns into a black hole (the TLS bytes pass through
it untouched, so certificates still verify).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from tryon_operator.registry.handover import ANNOTATION_LEADER_WEBHOOK
from tryon_operator.runtime.leadership.elector import LeaderElector, LeadershipCallbacks
from tryon_operator.runtime.leadership.lease import ElectionConfig

from tests.support.cluster import KubeCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE, RENEW, RETRY = 4, 3.0, 0.5  # seconds: short, so the suite stays quick
REPO = Path(__file__).resolve().parents[3]


# ----------------------------------------------------------------- helpers


@dataclass
class Counted:
    """An ApiClient whose every request (method, path) is recorded as it is sent."""

    api: client.ApiClient
    requests: list[tuple[str, str]] = field(default_factory=list)

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p in self.requests if method is None or m == method]


def counted_client(kubeconfig: str, host: str | None = None) -> Counted:
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    if host:
        cfg.host = host
    cfg.retries = False  # what lease_api_client() gives the operator's elector
    api = client.ApiClient(cfg)
    counted = Counted(api)
    original = api.call_api

    def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        counted.requests.append((method, url.split("?")[0].removeprefix(cfg.host)))
        return original(method, url, *args, **kwargs)

    api.call_api = call_api  # type: ignore[method-assign]
    return counted


class BlackHoleProxy:
    """TCP forwarder to the apiserver; ``cut()`` makes it swallow every byte, both ways."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("https://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.cut_off = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.cut_off.set()

    def heal(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(down,), daemon=True).start()

    def _pump(self, down: socket.socket) -> None:
        up = socket.create_connection(self.upstream)
        peer = {down: up, up: down}
        try:
            while not self.closed:
                ready, _, _ = select.select([down, up], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not self.cut_off.is_set():
                        peer[sock].sendall(data)
        except OSError:
            return
        finally:
            down.close()
            up.close()


@dataclass
class Watched:
    """An in-process elector and what its callbacks reported (monotonic times)."""

    elector: LeaderElector
    counted: Counted
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)
    holders: list[str | None] = field(default_factory=list)


def elector(counted: Counted, namespace: str, identity: str,
            webhook_url: str | None = None) -> Watched:
    watched: Watched

    def started() -> None:
        watched.started.append(time.monotonic())

    def stopped() -> None:
        watched.stopped.append(time.monotonic())

    watched = Watched(
        LeaderElector(
            counted.api,
            ElectionConfig(identity=identity, namespace=namespace, lease_seconds=LEASE,
                           renew_deadline_seconds=RENEW, retry_period_seconds=RETRY,
                           holder_annotations={ANNOTATION_LEADER_WEBHOOK: webhook_url}),
            LeadershipCallbacks(on_started_leading=started, on_stopped_leading=stopped,
                                on_new_leader=lambda holder: watched.holders.append(holder)),
        ),
        counted,
    )
    return watched


def first_start(watched: Watched) -> float:
    """When ``on_started_leading`` first ran: it runs on the callback thread, a moment after
    ``is_leader`` turns true, so wait for it rather than read an empty list."""
    at = wait_for(lambda: watched.started[0] if watched.started else None, 2,
                  f"{watched.elector.identity}'s on_started_leading")
    assert isinstance(at, float)
    return at


def lease(kube_api: client.ApiClient, namespace: str) -> dict[str, Any]:
    return client.CoordinationV1Api(kube_api).read_namespaced_lease(
        "tryon-operator", namespace).to_dict()["spec"]


class Overlap:
    """Samples two electors' fences every 10 ms; ``both`` counts samples where both were open."""

    def __init__(self, *electors: LeaderElector) -> None:
        self.electors = electors
        self.both = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.samples += 1
            if sum(e.still_leader() for e in self.electors) > 1:
                self.both += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class ElectorProcess:
    """``python -m tryon_operator.runtime.leadership.cli`` as a child; its JSON lines."""

    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if line["event"] == name]


@pytest.fixture
def spawn(kube_cluster: KubeCluster) -> Iterator[Callable[[str, str], ElectorProcess]]:
    children: list[ElectorProcess] = []

    def start(namespace: str, identity: str) -> ElectorProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRYON_", "KUBECONFIG"))}
        env["PYTHONPATH"] = str(REPO / "operator")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tryon_operator.runtime.leadership.cli",
             "--kubeconfig", kube_cluster.kubeconfig, "--namespace", namespace,
             "--identity", identity, "--lease-seconds", str(LEASE),
             "--renew-deadline-seconds", str(RENEW), "--retry-period-seconds", str(RETRY)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        child = ElectorProcess(proc)

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                child.lines.append(json.loads(raw))

        threading.Thread(target=read, daemon=True).start()
        children.append(child)
        return child

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGCONT)
            child.proc.kill()
        child.proc.wait(timeout=10)


def wall(micro_time: Any) -> float:
    if isinstance(micro_time, datetime):
        return micro_time.timestamp()
    return datetime.strptime(str(micro_time), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=UTC).timestamp()


# ----------------------------------------------------------------- tests


def test_one_leader_a_standby_that_only_reads_and_a_graceful_handover(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str,
) -> None:
    a = elector(counted_client(kube_cluster.kubeconfig), namespace, "a")
    b = elector(counted_client(kube_cluster.kubeconfig), namespace, "b")
    # both campaign at once for a Lease that does not exist yet: one create wins, one gets 409
    a.elector.start()
    b.elector.start()
    try:
        wait_for(lambda: a.elector.is_leader or b.elector.is_leader, 10, "a leader")
        leader, standby = (a, b) if a.elector.is_leader else (b, a)
        overlap = Overlap(a.elector, b.elector)
        time.sleep(LEASE + 2 * RETRY)  # longer than a lease: the standby must still wait
        overlap.stop()
        assert leader.elector.is_leader and not standby.elector.is_leader
        assert overlap.both == 0 and overlap.samples > 100
        assert lease(kube_api, namespace)["holder_identity"] == leader.elector.identity
        assert standby.elector.leader == leader.elector.identity

        # the standby wrote nothing: it only tried the Lease (and lost the create race, if any)
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        standby_writes = [(m, p) for m, p in standby.counted.requests if m != "GET"]
        assert standby_writes in ([], [("POST", lease_path)]), standby_writes
        assert set(standby.counted.paths("GET")) == {f"{lease_path}/tryon-operator"}
        assert len(standby.counted.paths("GET")) >= (LEASE + 2 * RETRY) / RETRY - 2
        # the leader: the Lease (create or renew) and one Event, nothing else
        assert {p for m, p in leader.counted.requests if m != "GET"} <= {
            lease_path, f"{lease_path}/tryon-operator", f"/api/v1/namespaces/{namespace}/events"}
        renewals = leader.counted.paths("PUT")
        assert len(renewals) >= (LEASE + 2 * RETRY) / RETRY - 2

        # graceful stop: released at once, the standby leads within about a retry period
        before = standby.counted.requests[:]
        stopped_at = time.monotonic()
        leader.elector.stop()
        assert not leader.elector.is_leader and leader.stopped
        wait_for(lambda: standby.elector.is_leader, 5, "the standby leads")
        took = first_start(standby) - stopped_at
        assert took < RETRY * 1.1 + 0.5, f"graceful hand-over took {took:.2f}s"
        spec = lease(kube_api, namespace)
        assert spec["holder_identity"] == standby.elector.identity
        assert spec["lease_transitions"] == 1 and spec["lease_duration_seconds"] == LEASE
        assert None in standby.holders  # it saw the released (empty) record first
        # what the hand-over cost the standby: reads, then one write that took the Lease
        taken = [(m, p) for m, p in standby.counted.requests[len(before):] if m != "GET"]
        assert taken[0] == ("PUT", f"{lease_path}/tryon-operator"), taken
    finally:
        a.elector.stop()
        b.elector.stop()


def test_a_standby_reads_the_leaders_webhook_address_from_the_lease_when_asked(
    kube_cluster: KubeCluster, namespace: str,
) -> None:
    a = elector(counted_client(kube_cluster.kubeconfig), namespace, "a",
                webhook_url="https://10.0.0.7:8443")
    b = elector(counted_client(kube_cluster.kubeconfig), namespace, "b")
    a.elector.start()
    try:
        wait_for(lambda: a.elector.is_leader, 10, "a leads")
        # b has not campaigned yet (as after losing the create race): its view names nobody
        assert b.elector.leader_annotation(ANNOTATION_LEADER_WEBHOOK) is None
        assert b.elector.read_leader_annotation(ANNOTATION_LEADER_WEBHOOK) == "https://10.0.0.7:8443"
        assert b.elector.leader is None, "the campaign's record is the campaign's to move"
        assert [m for m, _ in b.counted.requests] == ["GET"]
        # the leader handles its own
        assert a.elector.read_leader_annotation(ANNOTATION_LEADER_WEBHOOK) is None
    finally:
        a.elector.stop()


def test_a_leader_cut_off_from_the_apiserver_stops_before_the_lease_expires(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str,
) -> None:
    proxy = BlackHoleProxy(kube_cluster.server)
    a = elector(counted_client(kube_cluster.kubeconfig, host=proxy.url), namespace, "a")
    b = elector(counted_client(kube_cluster.kubeconfig), namespace, "b")
    a.elector.start()
    try:
        wait_for(lambda: a.elector.is_leader, 10, "a leads")
        b.elector.start()
        time.sleep(2 * RETRY)
        overlap = Overlap(a.elector, b.elector)
        cut = time.monotonic()
        proxy.cut()
        wait_for(lambda: not a.elector.still_leader(), RENEW + 1, "a's fence closes")
        fenced = time.monotonic()
        assert fenced - cut <= RENEW + 0.2, f"fence closed {fenced - cut:.2f}s after the cut"
        wait_for(lambda: a.stopped, RETRY + 1, "a's on_stopped_leading")
        wait_for(lambda: b.elector.is_leader, LEASE + 3, "b takes over after expiry")
        overlap.stop()
        assert overlap.both == 0, "both replicas considered themselves leader"
        took = first_start(b) - cut
        # b waits the whole lease from the last change it saw (a's last renewal, before the cut)
        assert LEASE - RETRY - 0.3 <= took <= LEASE + 2 * RETRY + 1, took
        assert b.started[0] > fenced
        assert lease(kube_api, namespace)["holder_identity"] == "b"

        # reconnected, the old leader sees b and stays a standby
        proxy.heal()
        time.sleep(4 * RETRY)
        assert not a.elector.is_leader and a.elector.leader == "b" and len(a.started) == 1
        assert b.elector.is_leader
    finally:
        proxy.heal()
        a.elector.stop()
        b.elector.stop()
        proxy.close()


def test_kill_9_of_the_leader_process_hands_over_when_the_lease_expires(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str,
    spawn: Callable[[str, str], ElectorProcess],
) -> None:
    child = spawn(namespace, "child")
    wait_for(lambda: child.events("started_leading"), 20, "the child leads")
    b = elector(counted_client(kube_cluster.kubeconfig), namespace, "b")
    b.elector.start()
    try:
        time.sleep(3 * RETRY)
        assert not b.elector.is_leader
        child.proc.kill()
        killed = time.monotonic()
        child.proc.wait(timeout=5)
        last_renewal = wall(lease(kube_api, namespace)["renew_time"])
        wait_for(lambda: b.elector.is_leader, LEASE + RETRY + 2, "b takes over")
        took = first_start(b) - killed
        assert took <= LEASE + RETRY + 0.5, f"takeover after kill -9 took {took:.2f}s"
        # never before the dead leader's Lease could have expired
        assert wall(lease(kube_api, namespace)["acquire_time"]) >= last_renewal + LEASE - 0.05
        assert lease(kube_api, namespace)["lease_transitions"] == 1
    finally:
        b.elector.stop()


def test_a_leader_paused_past_its_lease_does_not_lead_when_it_wakes(
    kube_cluster: KubeCluster, kube_api: client.ApiClient, namespace: str,
    spawn: Callable[[str, str], ElectorProcess],
) -> None:
    child = spawn(namespace, "child")
    wait_for(lambda: child.events("started_leading"), 20, "the child leads")
    b = elector(counted_client(kube_cluster.kubeconfig), namespace, "b")
    b.elector.start()
    try:
        time.sleep(3 * RETRY)
        child.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: b.elector.is_leader, LEASE + RETRY + 2, "b takes over")
        taken = lease(kube_api, namespace)
        child.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: child.events("stopped_leading"), 2 * RETRY + 2, "the child steps down")
        time.sleep(4 * RETRY)
        assert len(child.events("started_leading")) == 1  # it never led again
        assert child.events("new_leader")[-1]["holder"] == "b"
        assert b.elector.is_leader and b.stopped == []
        spec = lease(kube_api, namespace)
        assert spec["holder_identity"] == "b" and spec["lease_transitions"] == 1
        assert spec["acquire_time"] == taken["acquire_time"]  # b's tenure was never broken
    finally:
        b.elector.stop()
