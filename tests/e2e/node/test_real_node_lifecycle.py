"""real-node-1's lifecycle: it joins with containerd and a device-plugin GPU, runs a real pod, and
``cluster down`` (also after a crash) leaves the host exactly as it found it.

Each test starts and stops its own cluster, so none may run while another real node is up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster import hostsetup, nodeconfig, realnode
from hack.localcluster.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.e2e

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "pause-probe", "namespace": "default"},
    "spec": {
        "nodeSelector": {"tryon.dev/real-node": "true"},
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "pause",
                "image": "localhost/tryon/pause:3.10",
                "imagePullPolicy": "Never",
                "resources": {"limits": {"nvidia.com/gpu": 1}},
            }
        ],
    },
}


def _wait(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _pod_running(local: LocalCluster) -> bool:
    pod = json.loads(local.kubectl("get", "pod", "pause-probe", "-o", "json"))
    return pod.get("status", {}).get("phase") == "Running"


@pytest.fixture
def host_before() -> Iterator[dict[str, object]]:
    assert hostsetup.HostRecord.load() is None, "a real node is already up on this host"
    yield hostsetup.snapshot()


def _start_with_a_pod(state: Path) -> LocalCluster:
    local = LocalCluster(state, real_node=True)
    local.up()
    local.kubectl("apply", "-f", "-", input_text=json.dumps(POD))
    _wait("the pod Running on real-node-1", lambda: _pod_running(local), 90)
    return local


def test_real_node_joins_with_containerd_and_device_plugin_gpus(
    tmp_path: Path, host_before: dict[str, object]
) -> None:
    local = _start_with_a_pod(tmp_path / "cluster")
    try:
        wide = local.kubectl("get", "nodes", "-o", "wide")
        print(f"\n{wide}")
        node = json.loads(local.kubectl("get", "node", "real-node-1", "-o", "json"))
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://2.")
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == str(nodeconfig.FAKE_GPUS)
        assert node["metadata"]["labels"]["tryon.dev/real-node"] == "true"
        assert "gpu-node-1" in wide, "the kwok nodes stay next to the real one"
        pod = json.loads(local.kubectl("get", "pod", "pause-probe", "-o", "json"))
        assert pod["status"]["containerStatuses"][0]["containerID"].startswith("containerd://")
        gpustub_log = (tmp_path / "cluster" / "logs" / "gpustub.log").read_text()
        assert "allocate [GPU-fake-" in gpustub_log, "the GPU went through the device manager"
    finally:
        local.down()
    assert hostsetup.snapshot() == host_before


def test_cluster_down_after_a_crash_leaves_the_host_as_it_was(
    tmp_path: Path, host_before: dict[str, object]
) -> None:
    state = tmp_path / "cluster"
    local = _start_with_a_pod(state)
    record = hostsetup.HostRecord.load()
    assert record is not None
    # Everything dies at once, as in a VM crash or `kill -9` of the whole process tree; the
    # containers and their shims keep running, and mounts, cgroups and the bridge stay.
    for pid in [
        *record.pids.values(),
        *json.loads((state / "cluster.json").read_text())["pids"].values(),
    ]:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    assert hostsetup.snapshot() != host_before
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hack.localcluster.cluster",
            "down",
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert hostsetup.snapshot() == host_before
    assert not local.kubectl_reachable()


def test_a_second_real_node_on_the_same_host_is_refused(
    tmp_path: Path, host_before: dict[str, object]
) -> None:
    first = LocalCluster(tmp_path / "first", real_node=True)
    first.up()
    try:
        with pytest.raises(realnode.NodeError, match="already runs on this host"):
            LocalCluster(tmp_path / "second", real_node=True).up()
        assert first.kubectl("get", "node", "real-node-1")
    finally:
        first.down()
    assert hostsetup.snapshot() == host_before
