"""The printed report: Markdown tables of both controllers' figures, side by side."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import os
import platform
from pathlib import Path

from bench.common import percentile

from .scenario import Controller


def fmt(value: float, unit: str = "", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def ratio(ours: float, theirs: float) -> str:
    if any(v is None or math.isnan(v) for v in (ours, theirs)) or theirs == 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join([f"\n### {title}\n", line, sep, *body])


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def report(
    args: argparse.Namespace, load_at_start: str, ours: Controller | None, argo: Controller | None
) -> str:
    """The printed report: promotion, rollback and scale tables, ours next to Argo's."""
    o = ours.results if ours else {}
    a = argo.results if argo else {}
    out = [
        f"# operator benchmark — {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"machine: {platform.node()}, {os.cpu_count()} CPUs "
        f"({_cpu_model()}), shared with other work; Python {platform.python_version()}",
        f"argo: {a.get('version', 'not run')}; ours: {o.get('settings', {})}",
        f"sizes {args.sizes}, wave {args.wave}, rollbacks "
        f"{args.rollbacks}, steady window {args.steady}s, controller-manager "
        f"QPS {args.controller_manager_qps or '20 (upstream default)'}",
        "load average (1/5/15 min) at start: {} / at end: {}".format(
            load_at_start, " ".join(f"{x:.2f}" for x in os.getloadavg())
        ),
    ]

    def dist(values: list[float] | None) -> tuple[str, str, str]:
        values = values or []
        return (
            fmt(percentile(values, 0.5), " s"),
            fmt(percentile(values, 0.95), " s"),
            str(len(values)),
        )

    rows = []
    ow_p, ow_h, aw = o.get("wave_polling", {}), o.get("wave_webhook", {}), a.get("wave", {})
    for title, key in (
        ("promotion overhead: last new pod Ready -> selector flipped", "overhead"),
        ("trigger -> selector flipped", "trigger_to_flip"),
    ):
        for label, res in (
            ("ours, MLflow polling", ow_p),
            ("ours, MLflow webhook", ow_h),
            ("argo-rollouts (spec change)", aw),
        ):
            p50, p95, n = dist(res.get(key))
            rows.append([title, label, p50, p95, n])
    ours_all = (ow_p.get("overhead") or []) + (ow_h.get("overhead") or [])
    rows.append(
        [
            "promotion overhead p95 ratio (ours both waves / argo)",
            "",
            "",
            ratio(percentile(ours_all, 0.95), percentile(aw.get("overhead") or [], 0.95)),
            "",
        ]
    )
    for label, res in (("ours, polling", ow_p), ("ours, webhook", ow_h)):
        for title, key in (
            ("alias moved -> new Deployment scaled up", "trigger_to_deploy"),
            ("last pod Ready -> smoke call (stub)", "ready_to_smoke"),
            ("smoke call -> selector flipped", "smoke_to_flip"),
        ):
            p50, p95, n = dist(res.get(key))
            rows.append([title, label, p50, p95, n])
        counts = res.get("reconciles_to_flip") or []
        rows.append(
            [
                "reconciles per object during the wave",
                label,
                fmt(percentile(counts, 0.5), ""),
                fmt(percentile(counts, 0.95), ""),
                str(len(counts)),
            ]
        )
        p50, p95, n = dist(res.get("reconcile_seconds"))
        rows.append(["mean time in one reconcile, per object", label, p50, p95, n])
    for label, res in (("ours, polling", ow_p), ("ours, webhook", ow_h), ("argo-rollouts", aw)):
        rows.append(
            [
                f"wave of {res.get('n', 0)} at once: all flipped",
                label,
                fmt(res.get("all_flipped_s", math.nan), " s"),
                "",
                f"{res.get('flipped', 0)}/{res.get('n', 0)}",
            ]
        )
    out.append(
        table(
            "Promotion (wave of objects promoted at once)",
            ["figure", "who", "p50", "p95", "n"],
            rows,
        )
    )

    rows = []
    orb, arb = o.get("rollback", {}), a.get("rollback", {})
    for label, res in (("ours", orb), ("argo-rollouts", arb)):
        p50, p95, n = dist(res.get("latency"))
        rows.append([label, res.get("signal", ""), p50, p95, n])
    rows.append(
        [
            "ratio p95 (ours / argo)",
            "",
            "",
            ratio(
                percentile(orb.get("latency") or [], 0.95),
                percentile(arb.get("latency") or [], 0.95),
            ),
            "",
        ]
    )
    out.append(
        table(
            "Rollback: failure visible in the API -> active selector back",
            ["who", "failure signal", "p50", "p95", "n"],
            rows,
        )
    )

    rows = []
    for size in args.sizes:
        os_, as_ = o.get(f"size_{size}", {}), a.get(f"size_{size}", {})
        for title, key, unit, digits in (
            ("time until all Healthy", "healthy_s", " s", 1),
            ("controller CPU while converging (share of a core)", "cpu_during", "", 2),
            ("steady: controller write calls/min", "writes_per_min", "", 1),
            ("steady: controller-resource reads/min", "reads_per_min", "", 0),
            ("steady: Event writes/min (all clients)", "events_per_min", "", 0),
            ("steady: all apiserver writes/min (all clients)", "all_writes_per_min", "", 0),
            ("steady: controller CPU (share of a core)", "cpu", "", 3),
            ("steady: controller RSS", "rss", " MiB", 0),
            ("peak RSS while converging", "rss_peak_during", " MiB", 0),
        ):
            ov, av = os_.get(key, math.nan), as_.get(key, math.nan)
            rows.append(
                [str(size), title, fmt(ov, unit, digits), fmt(av, unit, digits), ratio(ov, av)]
            )
    out.append(
        table(
            "Scale: objects created at once, then steady state",
            ["objects", "figure", "ours", "argo", "ours/argo"],
            rows,
        )
    )
    for ctl_res, label in ((o, "ours"), (a, "argo")):
        for size in args.sizes:
            detail = ctl_res.get(f"size_{size}", {}).get("write_detail")
            if detail:
                out.append(
                    f"\nsteady-state writes ({label}, {size} objects, whole window): {detail}"
                )
    return "\n".join(out)
