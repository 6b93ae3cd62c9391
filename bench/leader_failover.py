"""Failover time of leader election: kill -9 and SIGTERM of the leader, p50 / max over N tries.

Two electors run as processes (``python -m tryon_operator.runtime.leadership.cli``) against a local
control plane (started here, or ``--kubeconfig`` for one already running). Each try: the first one
leads, the second has seen it, the leader gets SIGKILL (the Lease must expire) or SIGTERM (it
releases the Lease) at a random moment of its renewal cycle, and the time from the signal to the
standby's ``on_started_leading`` is the takeover time. Both processes run on this host, so their
wall clocks are the same clock.

    .venv/bin/python bench/leader_failover.py                # 10 tries each, 15 s / 10 s / 2 s
    .venv/bin/python bench/leader_failover.py --tries 20 --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.leader_failover")

from hack.localcluster.cluster import Binaries, LocalCluster

REPO = Path(__file__).resolve().parents[1]


class Child:
    """One elector process and its JSON lines."""

    def __init__(self, args: argparse.Namespace, kubeconfig: str, namespace: str,
                 identity: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRYON_", "KUBECONFIG"))}
        env["PYTHONPATH"] = str(REPO / "operator")
        self.identity = identity
        self.lines: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tryon_operator.runtime.leadership.cli",
             "--kubeconfig", kubeconfig, "--namespace", namespace, "--identity", identity,
             "--lease-seconds", str(args.lease_seconds),
             "--renew-deadline-seconds", str(args.renew_deadline_seconds),
             "--retry-period-seconds", str(args.retry_period_seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(json.loads(raw))

    def first(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if check(line):
                    return line
            time.sleep(0.01)
        raise TimeoutError(f"{self.identity}: nothing matched in {timeout}s: {self.lines}")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=10)


def one_try(args: argparse.Namespace, kubeconfig: str, namespace: str, sig: int, n: int) -> float:
    leader = Child(args, kubeconfig, namespace, f"a-{n}")
    standby: Child | None = None
    try:
        leader.first(lambda e: e["event"] == "started_leading", 60)
        standby = Child(args, kubeconfig, namespace, f"b-{n}")
        standby.first(lambda e: e["event"] == "new_leader" and e["holder"] == leader.identity, 60)
        time.sleep(args.retry_period_seconds + random.uniform(0, args.retry_period_seconds))
        signalled = time.time()
        leader.proc.send_signal(sig)
        led = standby.first(lambda e: e["event"] == "started_leading",
                            args.lease_seconds + 30)
        return float(led["t"]) - signalled
    finally:
        leader.end()
        if standby is not None:
            standby.end()


def run(args: argparse.Namespace, kubeconfig: str, kubectl: str) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    for mode in args.modes:
        sig = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM}[mode]
        times: list[float] = []
        for n in range(args.tries):
            namespace = f"bench-leader-{uuid.uuid4().hex[:6]}"
            subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "create", "namespace",
                            namespace], check=True, capture_output=True)
            try:
                took = one_try(args, kubeconfig, namespace, sig, n)
            finally:
                subprocess.run([kubectl, f"--kubeconfig={kubeconfig}", "delete", "namespace",
                                namespace, "--wait=false"], capture_output=True)
            times.append(took)
            print(f"{mode} try {n + 1}/{args.tries}: standby led {took:.2f}s after the signal",
                  file=sys.stderr, flush=True)
        results[mode] = times
    return results


def table(args: argparse.Namespace, results: dict[str, list[float]]) -> str:
    lines = [
        f"leader failover: lease {args.lease_seconds}s, renew deadline "
        f"{args.renew_deadline_seconds:g}s, retry {args.retry_period_seconds:g}s; "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        "| signal to the leader | tries | p50 | max | min |",
        "|---|---|---|---|---|",
    ]
    names = {"sigkill": "SIGKILL (kill -9)", "sigterm": "SIGTERM (graceful, releases)"}
    for mode, times in results.items():
        lines.append(f"| {names[mode]} | {len(times)} | {statistics.median(times):.2f} s | "
                     f"{max(times):.2f} s | {min(times):.2f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--modes", nargs="+", default=["sigkill", "sigterm"],
                        choices=["sigkill", "sigterm"])
    parser.add_argument("--lease-seconds", type=int, default=15)
    parser.add_argument("--renew-deadline-seconds", type=float, default=10.0)
    parser.add_argument("--retry-period-seconds", type=float, default=2.0)
    parser.add_argument("--kubeconfig", default=None,
                        help="a running local cluster; default: start one in a temp dir")
    parser.add_argument("--json", default=None, help="also write the raw times here")
    args = parser.parse_args(argv)

    local = None
    if args.kubeconfig:
        kubeconfig, kubectl = args.kubeconfig, str(Binaries.build_or_find().kubectl)
    else:
        local = LocalCluster(Path(tempfile.mkdtemp(prefix="tryon-leader-bench-")) / "cluster")
        info = local.up()
        kubeconfig, kubectl = info.kubeconfig, info.kubectl
    try:
        results = run(args, kubeconfig, kubectl)
    finally:
        if local is not None:
            local.down()
    print(table(args, results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
