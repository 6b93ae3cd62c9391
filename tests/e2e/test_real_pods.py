"""The product on real pods: probes, Services, DNS, blue/green, the gates and the failures.

Each test has its own registered model, namespace and TryOnModel; the cluster, the dev MLflow
and S3, and the operator installed by the chart are shared by the session (tests/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime

import pytest

from tests.e2e.conftest import (
    Models,
    RealCluster,
    apply_tryonmodel,
    cluster_ip,
    run_in_pod,
    try_on,
    tryonmodel,
    wait_for,
    wait_serving,
)

pytestmark = pytest.mark.e2e

NAME = "dress"


def _pods(cluster: RealCluster, namespace: str, colour: str | None = None) -> list[dict]:
    selector = ["-l", f"tryon.dev/color={colour}"] if colour else []
    return list(
        json.loads(cluster.kubectl("get", "pods", "-n", namespace, *selector, "-o", "json"))[
            "items"
        ]
    )


def _ready(pod: dict) -> bool:
    conds = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _assert_still_serving(cluster: RealCluster, shop: str, version: str) -> None:
    """Traffic stayed: status says so, and a shopper request is answered by that version."""
    assert cluster.status(NAME, shop)["activeVersion"] == version
    assert try_on(f"http://{cluster_ip(cluster, NAME, shop)}:80")[1] == version


def _wait_rejected(cluster: RealCluster, shop: str, version: str, timeout: float) -> None:
    wait_for(
        f"v{version} rejected",
        lambda: version in (cluster.status(NAME, shop).get("rejectedVersions") or []),
        timeout,
    )


def _serving(
    cluster: RealCluster, models: Models, shop: str, replicas: int = 1, **rollout: object
) -> str:
    """v1 registered, promoted and serving; returns the version."""
    v1 = models.register(seed=1)
    models.promote(v1)
    apply_tryonmodel(
        cluster, tryonmodel(NAME, shop, models.name, cluster.backends, replicas, **rollout)
    )
    wait_serving(cluster, NAME, shop, v1)
    return v1


def test_renderer_pods_on_the_real_node_become_ready_only_through_the_readyz_probe(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    _serving(real_cluster, models, shop)
    (pod,) = [p for p in _pods(real_cluster, shop) if _ready(p)]
    assert pod["spec"]["nodeName"] == "real-node-1"
    (container,) = pod["status"]["containerStatuses"]
    assert container["containerID"].startswith("containerd://")
    probe = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"
    ready_at = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")[
        "lastTransitionTime"
    ]
    started_at = container["state"]["running"]["startedAt"]
    # The container ran for a while (torch import, model download from S3, warm-up) before
    # the kubelet's probe saw /readyz answer 200.
    assert _time(ready_at) > _time(started_at)
    logs = real_cluster.kubectl("logs", "-n", shop, pod["metadata"]["name"])
    assert "ready on cpu" in logs
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] in ("1", 1)


def test_a_shopper_request_through_the_cluster_ip_is_answered_by_the_served_version(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop)
    ip = cluster_ip(real_cluster, NAME, shop)
    _, version, body = wait_for(
        "a 200 through the ClusterIP", lambda: (r := try_on(f"http://{ip}:80"))[0] == 200 and r, 30
    )
    assert version == v1
    assert body[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_pod_reaches_the_renderer_by_its_service_dns_name(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop)
    # Polls for up to 20 s: kube-proxy programs a new Service's rules a moment after it exists.
    script = (
        "import json, time, urllib.request\n"
        f"url = 'http://{NAME}.{shop}.svc.cluster.local/v1/model'\n"
        "for attempt in range(40):\n"
        "    try:\n"
        "        r = urllib.request.urlopen(url, timeout=10)\n"
        "        break\n"
        "    except OSError as err:\n"
        "        print('attempt', attempt, err, flush=True)\n"
        "        time.sleep(0.5)\n"
        "print(json.dumps({'version': r.headers.get('X-Model-Version'), 'body': json.load(r)}))\n"
    )
    out = json.loads(run_in_pod(real_cluster, shop, script).strip().splitlines()[-1])
    assert str(out["body"].get("version")) == v1 or out["version"] == v1


def test_alias_move_rolls_out_green_smoke_tests_the_preview_flips_and_scales_blue_down(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop)
    first = real_cluster.status(NAME, shop)["activeColor"]
    v2 = models.register(seed=2)
    models.promote(v2)
    status = wait_serving(real_cluster, NAME, shop, v2)
    assert status["activeColor"] != first
    selector = real_cluster.get("service", NAME, shop)["spec"]["selector"]
    assert selector["tryon.dev/color"] == status["activeColor"]
    ip = cluster_ip(real_cluster, NAME, shop)
    assert try_on(f"http://{ip}:80")[1] == v2
    old = f"{NAME}-{first}"
    wait_for(
        f"{old} scaled to 0",
        lambda: real_cluster.get("deployment", old, shop)["spec"]["replicas"] == 0,
        60,
    )
    wait_for(f"{old} pods gone", lambda: not _pods(real_cluster, shop, first), 90)
    promoted = [
        e
        for e in real_cluster.events(shop, "Promoted")
        if f"(version {v2})" in e.get("message", "")
    ]
    assert len(promoted) == 1, promoted
    assert v1 != v2


def test_a_model_that_renders_nan_is_rejected_by_the_smoke_gate_and_traffic_stays(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop)
    bad = models.register(failure_mode="nan")
    models.promote(bad)
    _wait_rejected(real_cluster, shop, bad, 300)
    _assert_still_serving(real_cluster, shop, v1)


def _watch_pods(cluster: RealCluster, namespace: str, seen: list[dict]) -> threading.Thread:
    """Collects every pod state the API server sends (a watch, not polling: the operator rolls a
    crash-looping preview back within a fraction of a second, before a poll would look)."""
    from kubernetes import client, config, watch

    api = client.CoreV1Api(config.new_client_from_config(config_file=cluster.kubeconfig))

    def run() -> None:
        for event in watch.Watch().stream(api.list_namespaced_pod, namespace, timeout_seconds=280):
            seen.append(event["raw_object"])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_model_whose_container_exits_at_start_crash_loops_and_is_rolled_back(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop)
    seen: list[dict] = []
    _watch_pods(real_cluster, shop, seen)
    bad = models.register(failure_mode="unloadable")
    models.promote(bad)
    _wait_rejected(real_cluster, shop, bad, 240)

    def exited_with_3(pod: dict) -> bool:
        for cs in pod["status"].get("containerStatuses", []):
            for state in (cs.get("state") or {}, cs.get("lastState") or {}):
                if (state.get("terminated") or {}).get("exitCode") == 3:
                    return True
        return False

    states = [
        (cs.get("restartCount"), cs.get("state"))
        for pod in list(seen)
        for cs in pod["status"].get("containerStatuses", [])
    ]
    print("renderer container states seen:", states)
    assert any(exited_with_3(pod) for pod in list(seen)), (
        "no pod state shows the renderer exiting with code 3 (model cannot be built)"
    )
    rejected = [h for h in real_cluster.status(NAME, shop).get("history", [])
                if h.get("version") == bad and h.get("outcome") == "RolledBack"]
    assert rejected and rejected[-1]["reason"] == "CrashLoop", rejected
    _assert_still_serving(real_cluster, shop, v1)


def test_a_renderer_pod_deleted_by_hand_is_replaced_while_traffic_keeps_flowing(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v1 = _serving(real_cluster, models, shop, replicas=2)
    ip = cluster_ip(real_cluster, NAME, shop)
    victim = _pods(real_cluster, shop)[0]["metadata"]["name"]
    results: list[int | str] = []
    stop = threading.Event()

    def shopper() -> None:
        while not stop.is_set():
            try:
                results.append(try_on(f"http://{ip}:80", timeout=30)[0])
            except Exception as err:
                results.append(f"{type(err).__name__}: {err}")

    # Traffic flows first (kube-proxy programs a just-flipped Service a moment after Healthy).
    wait_for("a 200 through the ClusterIP", lambda: try_on(f"http://{ip}:80")[0] == 200, 30)
    thread = threading.Thread(target=shopper)
    thread.start()
    try:
        real_cluster.kubectl("delete", "pod", "-n", shop, victim, "--wait=false")
        wait_for(
            "a replacement pod Ready",
            lambda: (
                sum(
                    1
                    for p in _pods(real_cluster, shop)
                    if _ready(p)
                    and p["metadata"]["name"] != victim
                    and not p["metadata"].get("deletionTimestamp")
                )
                == 2
            ),
            180,
        )
    finally:
        stop.set()
        thread.join(60)
    assert results and all(code == 200 for code in results), results
    assert real_cluster.status(NAME, shop)["activeVersion"] == v1


def _kill_container_process(pod: dict) -> None:
    """SIGKILL of the container's main process on the node, as the kernel's OOM killer does it."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    state = subprocess.run(
        ["runc", "--root", "/run/containerd/runc/k8s.io", "state", cid],
        capture_output=True,
        text=True,
        check=True,
    )
    os.kill(int(json.loads(state.stdout)["pid"]), signal.SIGKILL)


def _leader_pod(cluster: RealCluster, ns: str = "tryon-system") -> dict:
    """The operator pod that holds the Lease (the chart runs two replicas)."""
    holder = wait_for(
        "a leader",
        lambda: cluster.get("lease", "tryon-operator", ns)["spec"].get("holderIdentity"),
        60,
    )
    return cluster.get("pod", holder, ns)


def _rollout_of_v2_in_progress(cluster: RealCluster, models: Models, shop: str) -> str:
    _serving(cluster, models, shop)
    v2 = models.register(seed=3)
    models.promote(v2)
    wait_for(
        "the rollout of v2 in progress",
        lambda: (cluster.status(NAME, shop).get("rollout") or {}).get("version") == v2,
        60,
    )
    return v2


def _promoted_once(cluster: RealCluster, shop: str, version: str) -> None:
    promoted = [
        e
        for e in cluster.events(shop, "Promoted")
        if f"(version {version})" in e.get("message", "")
    ]
    assert len(promoted) == 1 and promoted[0].get("count", 1) == 1, promoted


def test_the_leader_killed_mid_rollout_is_replaced_and_the_rollout_finishes_once(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v2 = _rollout_of_v2_in_progress(real_cluster, models, shop)
    leader = _leader_pod(real_cluster)
    restarts = leader["status"]["containerStatuses"][0]["restartCount"]
    _kill_container_process(leader)
    wait_serving(real_cluster, NAME, shop, v2)
    name = leader["metadata"]["name"]
    after = real_cluster.get("pod", name, "tryon-system")["status"]["containerStatuses"][0]
    assert after["restartCount"] == restarts + 1, "the kubelet restarted the killed operator"
    assert after["lastState"]["terminated"]["exitCode"] == 137
    _promoted_once(real_cluster, shop, v2)


def test_the_leader_pod_deleted_mid_rollout_hands_over_and_the_rollout_finishes_once(
    real_cluster: RealCluster, models: Models, shop: str
) -> None:
    v2 = _rollout_of_v2_in_progress(real_cluster, models, shop)
    leader = _leader_pod(real_cluster)["metadata"]["name"]
    deleted = time.monotonic()
    real_cluster.kubectl("delete", "pod", leader, "-n", "tryon-system", "--wait=false")
    successor = wait_for(
        "another replica holds the Lease",
        lambda: (
            (
                h := real_cluster.get("lease", "tryon-operator", "tryon-system")["spec"].get(
                    "holderIdentity"
                )
            )
            not in (None, "", leader)
            and h
        ),
        60,
    )
    print(
        f"leader pod {leader} deleted -> {successor} leads after {time.monotonic() - deleted:.1f}s"
    )
    wait_serving(real_cluster, NAME, shop, v2)
    _promoted_once(real_cluster, shop, v2)
