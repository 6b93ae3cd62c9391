#!/usr/bin/env python3
"""Operator benchmark: tryon-operator next to Argo Rollouts' blue/green controller, same run.

On one fresh local control plane (hack/localcluster: real kube-apiserver, etcd, controller-manager,
scheduler, kwok) with real MLflow + S3 servers, it measures for both controllers:

* time until N objects created at once are Healthy, then N grown to the next size;
* steady state: API write calls per minute by the controller's resources (target 0), reads,
  controller CPU (share of one core, /proc utime+stime) and RSS;
* a wave of W promotions at once: last new pod Ready -> active Service selector flipped
  (promotion overhead), trigger -> flip, and time until all W flipped; ours twice: with MLflow
  polling alone, and with the MLflow webhook;
* rollback: failure visible in the API -> active selector back on the healthy colour.

Latencies are taken from the benchmark's own watches (receive time, monotonic clock) of pods and
Services, the same way for both controllers. Smoke tests hit a local stub that answers
{"passed": true} at once; the time spent in them is printed separately.

    .venv/bin/python bench/operator_bench.py            # quick: 100 objects, 100-object waves
    .venv/bin/python bench/operator_bench.py --full     # 100 then 1,000 objects (many minutes)
    .venv/bin/python bench/operator_bench.py --sizes 50 --wave 30 --skip-argo
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.operator_bench")

from bench.opbench.argo import ArgoScenario
from bench.opbench.ours import OursScenario
from bench.opbench.report import report
from bench.opbench.scenario import timed


class Bench(OursScenario, ArgoScenario):
    """Both controllers on one control plane (bench/opbench/): ours first, then Argo Rollouts."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100 objects (default)")
    size.add_argument("--full", action="store_true", help="100, then grown to 1,000 objects")
    size.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated growing object counts, e.g. 100,1000",
    )
    p.add_argument("--wave", type=int, default=None, help="objects promoted at once (<= 100)")
    p.add_argument("--rollbacks", type=int, default=30, help="objects rolled back at once")
    p.add_argument("--steady", type=float, default=None, help="steady-state window, seconds")
    p.add_argument("--settle", type=float, default=10.0, help="pause before the window")
    p.add_argument("--healthy-timeout", type=float, default=None)
    p.add_argument("--wave-timeout", type=float, default=180.0)
    p.add_argument(
        "--controller-manager-qps",
        type=int,
        default=None,
        help="kube-controller-manager's client QPS (burst 2x); default: upstream's 20",
    )
    p.add_argument("--skip-argo", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--profile", action="store_true", help="py-spy record ours in steady state")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="leave the workdir (logs) in place")
    p.add_argument("--json", type=Path, default=None, help="also write raw results here")
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = [100, 1000] if args.full else [100]
    args.wave = min(args.wave or 100, max(args.sizes))
    args.steady = args.steady or (120.0 if args.full else 60.0)
    args.healthy_timeout = args.healthy_timeout or (900.0 if args.full else 300.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    ours = argo = None
    try:
        with bench.stack:
            bench.setup()
            if not args.skip_ours:
                with timed("tryon-operator scenario"):
                    ours = bench.run_ours()
            if not args.skip_argo:
                with timed("argo-rollouts scenario"):
                    argo = bench.run_argo()
            text = report(args, bench.load_at_start, ours, argo)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(bench.workdir, ignore_errors=True)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"ours": ours.results if ours else None, "argo": argo.results if argo else None},
                indent=1,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
