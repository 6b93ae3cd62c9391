"""Issue 5, manual control: ``tryonctl`` (and ``kubectl tryon``) against the real API server, with
the real operator acting on the request annotations and MLflow recording rejections."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest
from tryon_operator.ctl.cli import main as tryonctl

from tests.support.cluster import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAULT = "sim.tryon.dev/fault"


@pytest.fixture
def ctl(kube_cluster, namespace, capsys):
    """Runs ``tryonctl ARGS -n <test namespace>``; returns (exit code, stdout + stderr)."""

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = tryonctl([*args, "-n", namespace, "--kubeconfig", kube_cluster.kubeconfig])
        out = capsys.readouterr()
        with capsys.disabled():
            print(f"\n$ tryonctl {' '.join(args)}  -> exit {code}\n{out.out}{out.err}", end="")
        return code, out.out + out.err

    return run


def awaiting(version):
    return lambda s: (s.get("rollout") or {}).get("phase") == "AwaitingPromotion" and \
        s["rollout"]["version"] == version


def annotations(tom):
    return tom.get()["metadata"].get("annotations") or {}


@pytest.fixture
def manual_v1(operator_factory, registry, create_tom, smoke, healthy_on, ctl):
    """autoPromote off: v1 promoted by ``tryonctl promote``, v2 registered but not aliased."""

    def make(**rollout):
        v1, v2 = registry.add_version(), registry.add_version()
        registry.set_alias("production", v1)
        operator_factory(smoke.url)
        tom = create_tom("dress", registry.name, rollout={"autoPromote": False, **rollout})
        tom.wait(awaiting(v1), 60, "first deploy awaiting promotion")
        code, out = ctl("promote", "dress", "--wait")
        assert code == 0, out
        tom.wait(healthy_on(v1, "blue"), 60, "v1 promoted")
        return tom, v1, v2

    return make


def test_promote_under_autopromote_false_flips_once_and_consumes_the_request(
        manual_v1, registry, ctl, healthy_on):
    tom, _, v2 = manual_v1()
    assert "tryon.dev/promote" not in annotations(tom)  # consumed by the promotion it asked for

    registry.set_alias("production", v2)
    tom.wait(awaiting(v2), 60, "v2 awaiting promotion")
    time.sleep(2)
    assert tom.selector_color() == "blue"  # a consumed request approves nothing later

    code, out = ctl("promote", "dress", "--version", "99")
    assert code == 1 and "version 99 is not the one rolling out" in out
    code, out = ctl("promote", "dress", "--wait")
    assert code == 0 and "Promoted" in out
    tom.wait(healthy_on(v2, "green"), 60, "v2 promoted")
    code, out = ctl("promote", "dress")
    assert code == 1 and "nothing to promote" in out and "Traceback" not in out


def test_rollback_of_a_preview_aborts_it_and_rejects_the_version(manual_v1, registry, ctl):
    tom, v1, v2 = manual_v1()
    registry.set_alias("production", v2)
    tom.wait(awaiting(v2), 60, "v2 awaiting promotion")

    code, out = ctl("rollback", "dress", "--wait")

    assert code == 0 and "RolledBack" in out
    status = tom.status()
    assert v2 in status["rejectedVersions"] and status.get("rollout") is None
    assert status["history"][-1]["reason"] == "ManualRollback"
    assert tom.selector_color() == "blue" and status["activeVersion"] == v1
    wait_for(lambda: tom.deployment("green").spec.replicas == 0, 10, "green scaled to 0")
    assert "ManualRollback" in registry.tags(v2)["tryon.dev/rejected"]
    assert "tryon.dev/rollback" not in annotations(tom)


def test_rollback_after_the_flip_returns_traffic_to_the_warm_colour(manual_v1, registry, ctl):
    tom, v1, v2 = manual_v1(postPromotionSeconds=120)
    registry.set_alias("production", v2)
    tom.wait(awaiting(v2), 60, "v2 awaiting promotion")
    assert ctl("promote", "dress", "--wait")[0] == 0
    tom.wait(lambda s: (s.get("rollout") or {}).get("phase") == "PostPromotion", 30,
             "v2 serving, blue kept warm")
    assert tom.selector_color() == "green"

    code, out = ctl("rollback", "dress", "--wait")

    assert code == 0 and "flipped back to blue" in out
    assert tom.selector_color() == "blue"
    status = tom.status()
    assert (status["activeColor"], status["activeVersion"]) == ("blue", v1)
    assert v2 in status["rejectedVersions"]
    assert status["history"][-1]["reason"] == "ManualRollback"


def test_rollback_in_steady_state_is_refused_and_a_hand_made_request_is_ignored(
        manual_v1, ctl, kube_cluster):
    tom, v1, _ = manual_v1()

    code, out = ctl("rollback", "dress")
    assert code == 1 and "tryon-model rollback" in out

    kube_cluster.kubectl("annotate", "tom", "dress", "-n", tom.namespace,
                         f"tryon.dev/rollback={v1}")
    wait_for(lambda: "tryon.dev/rollback" not in annotations(tom), 30, "request removed")
    tom.wait_events("ManualRequestIgnored")
    assert tom.status()["activeVersion"] == v1 and tom.status()["phase"] == "Healthy"


def test_retry_of_a_rejected_version_rolls_it_out_again(
        operator_factory, registry, create_tom, smoke, healthy_on, ctl):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    smoke.failing_versions.add(v2)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    registry.set_alias("production", v2)
    tom.wait(lambda s: v2 in s.get("rejectedVersions", []), 60, "v2 rejected by the smoke test")

    code, out = ctl("retry", "dress", "999")
    assert code == 1 and "version 999 is not rejected" in out

    smoke.failing_versions.clear()  # the fix: the renderer passes now
    code, out = ctl("retry", "dress", v2, "--wait")

    assert code == 0 and "RetryRequested" in out
    tom.wait(healthy_on(v2, "green"), 60, "v2 rolled out again and promoted")
    assert v2 not in tom.status().get("rejectedVersions", [])


def test_pause_freezes_rollouts_and_resume_lets_them_continue(
        operator_factory, registry, create_tom, smoke, healthy_on, ctl):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")

    assert ctl("pause", "dress") == (0, f"tryonmodel {tom.namespace}/dress paused\n")
    tom.wait(lambda s: s.get("phase") == "Paused", 30, "Paused")
    registry.set_alias("production", v2)
    time.sleep(3)
    assert tom.status().get("rollout") is None and tom.status()["activeVersion"] == v1
    code, out = ctl("status", "dress", "--watch")
    assert code == 2 and "tryonctl resume dress" in out

    assert ctl("resume", "dress")[0] == 0
    tom.wait(healthy_on(v2, "green"), 60, "v2 rolled out after resume")
    assert ctl("resume", "dress")[1].endswith("already resumed\n")


def test_status_prints_the_rollout_and_exits_like_argo_rollouts(
        operator_factory, registry, create_tom, smoke, healthy_on, ctl):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name, rollout={"progressDeadlineSeconds": 8})

    code, out = ctl("status", "dress", "--watch", "--timeout", "60s")
    assert code == 0 and out.splitlines()[-1] == f"Healthy - version {v1} serves on blue"
    code, out = ctl("status", "dress")
    assert code == 0
    assert "Status:      Healthy" in out
    assert f"Model:       {registry.name} alias production -> version {v1}" in out
    assert f"Active:      blue, version {v1}, 1/1 pods Ready" in out
    assert "RolloutComplete" in out  # among the last Events

    tom.patch_spec({"renderer": {"podLabels": {FAULT: "never-ready"}}})
    registry.set_alias("production", v2)
    tom.wait(lambda s: (s.get("rollout") or {}).get("version") == v2, 30, "v2 rolling out")
    code, out = ctl("status", "dress", "--watch", "--timeout", "1s")
    assert code == 2 and "timed out after 1s" in out
    code, out = ctl("status", "dress", "--watch", "--timeout", "60s")
    assert code == 1 and "Degraded - ProgressDeadlineExceeded" in out

    code, out = ctl("status", "nosuch")
    assert code == 1 and out.strip() == f"error: tryonmodel {tom.namespace}/nosuch: not found"


def test_kubectl_tryon_runs_as_a_kubectl_plugin(operator_factory, registry, create_tom, smoke,
                                                healthy_on, kube_cluster, tmp_path):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    operator_factory(smoke.url)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    plugin = tmp_path / "bin" / "kubectl-tryon"  # what the console script kubectl-tryon runs
    plugin.parent.mkdir()
    plugin.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from tryon_operator."
                      "ctl.cli import kubectl_plugin; sys.exit(kubectl_plugin())' \"$@\"\n")
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "KUBECONFIG": kube_cluster.kubeconfig,
           "PATH": f"{plugin.parent}:{os.environ['PATH']}"}

    listed = subprocess.run([kube_cluster.kubectl_path, "tryon", "list", "-n", tom.namespace],
                            env=env, capture_output=True, text=True, timeout=60)
    status = subprocess.run([kube_cluster.kubectl_path, "tryon", "status", "dress", "-n",
                             tom.namespace], env=env, capture_output=True, text=True, timeout=60)

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[1].split()[:4] == ["dress", "Healthy", "blue", v1]
    assert status.returncode == 0 and "Status:      Healthy" in status.stdout
