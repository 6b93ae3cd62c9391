"""hack/kind-e2e.sh run end to end against recording stand-ins for docker, kind, kubectl, helm,
curl and the training CLI (there is no Docker engine here). This checks the script's own logic:
the order of the steps, what it hands each tool, that port-forwards open and are stopped, and
that the cluster is deleted on success and on failure (after the state dump)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "hack" / "kind-e2e.sh"

# One program behind every stand-in name; it logs argv (and stdin for `apply -f -`).
FAKE = r'''
import base64, json, os, socket, sys, time
from pathlib import Path

tool, args = Path(sys.argv[0]).name, sys.argv[1:]
entry = {"tool": tool, "args": args}
if tool == "kubectl" and args[:1] == ["apply"] and "-" in args:
    entry["stdin"] = sys.stdin.read()
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")

fail = os.environ.get("FAKE_FAIL", "")
if tool == "kubectl" and "port-forward" in args:
    local = int(next(a for a in args if ":" in a and a.split(":")[0].isdigit()).split(":")[0])
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", local))
    server.listen()
    while True:
        conn, _ = server.accept()
        conn.close()
if tool == "kubectl" and "wait" in args and any("Healthy" in a for a in args):
    sys.exit(1 if fail == "healthy" else 0)
if tool == "kubectl" and "jsonpath={.data.AWS_ACCESS_KEY_ID}" in args:
    print(base64.b64encode(b"fake-access").decode(), end="")
elif tool == "kubectl" and "jsonpath={.data.AWS_SECRET_ACCESS_KEY}" in args:
    print(base64.b64encode(b"fake-secret").decode(), end="")
elif tool == "kubectl" and "--dry-run=client" in args:
    print("apiVersion: v1\nkind: Placeholder\n")
elif tool == "kubectl" and args[:1] == ["-n"] and "run" in args:
    print(json.dumps({"name": "tryon-vton", "version": "1"}))
elif tool == "curl" and "-o" in args:
    from PIL import Image
    Image.new("RGB", (48, 64), (1, 2, 3)).save(args[args.index("-o") + 1], format="PNG")
    print("200 image/png")
'''

PYTHON_WRAPPER = """#!/usr/bin/env bash
record='import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({"tool": "tryon-model", "args": sys.argv[1:]}) + "\\n")'
if [[ "$1" == "-m" && "$2" == "tryon_model.cli" ]]; then
  exec {real} -c "$record" "${@:3}"
fi
exec {real} "$@"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _run(
    tmp_path: Path, fail: str = "", **extra_env: str,
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "kind", "kubectl", "helm", "curl"):
        _executable(bin_dir / tool, f"#!{sys.executable}\n{FAKE}")
    python = tmp_path / "python"
    _executable(python, PYTHON_WRAPPER.replace("{real}", sys.executable))
    log = tmp_path / "calls.jsonl"
    log.touch()
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_FAIL": fail,
        "PYTHON": str(python),
        "IMAGE_TAG": "e2e-test",
        "KIND_CLUSTER_NAME": "tryon-test",
        **extra_env,
    }
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env,
                            timeout=100, cwd=tmp_path)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return result, calls


def _index(calls: list[dict], tool: str, *words: str) -> int:
    for i, call in enumerate(calls):
        if call["tool"] == tool and all(w in call["args"] for w in words):
            return i
    raise AssertionError(f"no {tool} {' '.join(words)} call in {[c['tool'] for c in calls]}")


def _last_index(calls: list[dict], tool: str, *words: str) -> int:
    reversed_index = _index(calls[::-1], tool, *words)
    return len(calls) - 1 - reversed_index


def _ports(call: dict) -> list[str]:
    """LOCAL and REMOTE of a `kubectl port-forward ... LOCAL:REMOTE` call."""
    return next(a for a in call["args"] if re.fullmatch(r"\d+:\d+", a)).split(":")


def _port_forwards_stopped(calls: list[dict]) -> None:
    forwards = [c for c in calls if c["tool"] == "kubectl" and "port-forward" in c["args"]]
    assert forwards
    for call in forwards:
        local = _ports(call)[0]
        out = subprocess.run(["bash", "-c", f"echo > /dev/tcp/127.0.0.1/{local}"],
                             capture_output=True, timeout=10)
        assert out.returncode != 0, f"port-forward on {local} still listening after the script"


def test_happy_path_runs_every_step_in_order_and_deletes_the_cluster(tmp_path: Path) -> None:
    result, calls = _run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "e2e passed" in result.stdout
    order = [
        _index(calls, "kind", "create", "cluster"),
        _index(calls, "docker", "build", "--target", "operator"),
        _index(calls, "docker", "build", "--target", "renderer"),
        _index(calls, "kind", "load", "docker-image", "tryon-operator:e2e-test",
               "tryon-renderer:e2e-test"),
        _index(calls, "kubectl", "apply", "-f", "examples/dev-mlflow-s3.yaml"),
        _index(calls, "kubectl", "wait", "--for=condition=complete", "job/create-mlflow-bucket"),
        _index(calls, "helm", "upgrade", "--install", "tryon-operator", "charts/tryon-operator"),
        _index(calls, "tryon-model", "train"),
        _index(calls, "tryon-model", "promote"),
        _index(calls, "kubectl", "wait", "tryonmodel/dress"),
        _index(calls, "curl"),
        _last_index(calls, "kind", "delete", "cluster"),
    ]
    assert order == sorted(order), order
    renderer_build = calls[order[2]]["args"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in renderer_build
    helm = calls[order[6]]["args"]
    for setting in ("image.repository=tryon-operator", "image.tag=e2e-test",
                    "image.pullPolicy=Never"):
        assert setting in helm
    applied = [c["stdin"] for c in calls if c.get("stdin") and "kind: TryOnModel" in c["stdin"]]
    assert len(applied) == 1 and "image: tryon-renderer:e2e-test" in applied[0]
    assert "fake-secret" not in applied[0]  # credentials go in by secretKeyRef only
    secret = next(c for c in calls if c["tool"] == "kubectl" and "secret" in c["args"]
                  and "generic" in c["args"])
    assert "--from-literal=AWS_SECRET_ACCESS_KEY=fake-secret" in secret["args"]
    forwards = [c for c in calls if c["tool"] == "kubectl" and "port-forward" in c["args"]]
    assert {_ports(c)[1] for c in forwards} == {"5000", "8333", "80"}
    assert all("--address" in c["args"] and "127.0.0.1" in c["args"] for c in forwards)
    _port_forwards_stopped(calls)


def test_failure_dumps_state_then_still_deletes_the_cluster(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, fail="healthy")
    assert result.returncode != 0
    assert "cluster state for debugging" in result.stdout + result.stderr
    healthy = _index(calls, "kubectl", "wait", "tryonmodel/dress")
    dump = _index(calls, "kubectl", "logs", "deployment/tryon-operator")
    delete = _last_index(calls, "kind", "delete", "cluster")
    assert healthy < dump < delete
    assert not [c for c in calls if c["tool"] == "curl"], "no request after a failed rollout"
    _port_forwards_stopped(calls)


def test_keep_cluster_leaves_it_running(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, KEEP_CLUSTER="1")
    assert result.returncode == 0, result.stderr[-2000:]
    deletes = [c for c in calls if c["tool"] == "kind" and c["args"][:2] == ["delete", "cluster"]]
    assert len(deletes) == 1  # only the clean-slate delete before `kind create cluster`
    assert "left running" in result.stdout
