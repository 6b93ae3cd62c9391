#!/usr/bin/env python3
"""Where the seconds of a flip go, on real pods: alias moved -> traffic flipped, phase by phase.

Starts the local cluster with real-node-1, MLflow + S3 and the operator from the chart (the same
installation as ``make demo``: ``hack/localcluster/incluster.py``), serves v1 of a demo-size
model (``TryOnNet()``, 1 replica, smoke test on), then moves the ``production`` alias ``--runs``
times, each to a new version registered beforehand. For each move it records, against the
moment ``set_registered_model_alias`` returned:

    Deployment scaled    the idle colour's Deployment asks for pods of the new version (the
                         operator's first write after it saw the move)
    operator saw it      the TryOnModel's status names the new version (written just after)
    pod created          the new pod exists (watch event)
    pod scheduled        its PodScheduled condition
    container started    its container is running, as the kubelet reports it (the renderer's
                         own process start, from /proc, comes a little earlier)
    renderer: ...        the renderer's own timestamped log lines (process up, model fetched,
                         model loaded, precision chosen, shape tuned, warm and ready)
    pod Ready            its Ready condition (the kubelet's readiness probe passed)
    renderer: smoke ...  the renderer's log line for the operator's smoke test (newer images)
    Service flipped      the Service's selector names the new colour

Watch events are timed as they arrive (the API server's timestamps are whole seconds). The tables
give the median and the max across runs, per phase and per step (a phase's own time); then the
renderer's shape sweep (``tuning_s`` in its ready line, the step that varies most) and the flip
less it; the last line is ``alias->flip median X.X s (N runs)``. Needs root and ``make images``.

    .venv/bin/python bench/flip_timeline.py [--runs 5] [--workdir .bench-flip]
        [--renderer-tag TAG] [--operator-tag TAG]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.flip_timeline")

from bench.autoscale import promote, register
from bench.common import log, wait_until
from hack.localcluster import incluster
from hack.localcluster.cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent
NAMESPACE, NAME, MODEL = "bench-flip", "dress", "bench-flip"
LABEL_COLOR, LABEL_VERSION = "tryon.dev/color", "tryon.dev/model-version"

# The renderer's log lines (``%(asctime)s %(levelname)s %(message)s``) that mark a phase; the
# first match after the alias move counts. Older images lack some: their rows stay empty.
PROCESS_STARTED = "renderer: process started"
STARTED_AGO = re.compile(r"\(([\d.]+) s after the process started\)")
RENDERER_LINES = [
    ("renderer: process up", re.compile(r"renderer process up")),
    ("renderer: model fetched", re.compile(r"model fetched")),
    ("renderer: model loaded", re.compile(r"model loaded")),
    ("renderer: precision chosen", re.compile(r"precision chosen")),
    ("renderer: shape tuned", re.compile(r"serving shapes? (measured|pinned|chosen)")),
    ("renderer: warm and ready", re.compile(r"model \S+ ready on")),
    ("renderer: smoke answered", re.compile(r"smoke test answered")),
]
PHASES = [
    "Deployment scaled",
    "operator saw it",
    "pod created",
    "pod scheduled",
    PROCESS_STARTED,
    "container started",
    *(name for name, _ in RENDERER_LINES[:-1]),
    "pod Ready",
    RENDERER_LINES[-1][0],
    "Service flipped",
]
# Images older than these lines: boto3's, logged when the server starts its lifespan, just
# before the loader.
FALLBACK_LINES = {"renderer: process up": re.compile(r"Found credentials in environment")}
TUNING_S = re.compile(r"'tuning_s': ([\d.]+)")  # in the ready line: the shape sweep's seconds
TUNING = "shape tuning"  # a duration in a run's dict, not a phase
LOG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@dataclass
class Marks:
    """First wall-clock time each phase was seen, for the version being rolled out."""

    version: str = ""
    at: dict[str, float] = field(default_factory=dict)
    pod: str = ""
    colour: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self, phase: str, when: float | None = None) -> None:
        with self.lock:
            self.at.setdefault(phase, time.time() if when is None else when)

    def reset(self, version: str) -> None:
        with self.lock:
            self.version, self.at, self.pod, self.colour = version, {}, "", ""


def _condition(pod: dict[str, Any], kind: str) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def on_pod(marks: Marks, pod: dict[str, Any]) -> None:
    if (pod["metadata"].get("labels") or {}).get(LABEL_VERSION) != marks.version:
        return
    marks.pod = marks.pod or pod["metadata"]["name"]
    marks.mark("pod created")
    if _condition(pod, "PodScheduled"):
        marks.mark("pod scheduled")
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if any((s.get("state") or {}).get("running") for s in statuses):
        marks.mark("container started")
    if _condition(pod, "Ready"):
        marks.mark("pod Ready")


def on_deployment(marks: Marks, dep: dict[str, Any]) -> None:
    labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    if labels.get(LABEL_VERSION) == marks.version and (dep["spec"].get("replicas") or 0) > 0:
        marks.colour = labels.get(LABEL_COLOR, "")
        marks.mark("Deployment scaled")


def on_tryonmodel(marks: Marks, tom: dict[str, Any]) -> None:
    status = tom.get("status") or {}
    rollout = status.get("rollout") or {}
    if rollout.get("version") == marks.version or status.get("activeVersion") == marks.version:
        marks.mark("operator saw it")


def on_service(marks: Marks, svc: dict[str, Any]) -> None:
    if svc["metadata"]["name"] != NAME or not marks.colour:
        return
    if (svc["spec"].get("selector") or {}).get(LABEL_COLOR) == marks.colour:
        marks.mark("Service flipped")


def watch(kubeconfig: str, marks: Marks, stop: threading.Event) -> list[threading.Thread]:
    """One watch per kind; every event is timed as it arrives."""
    from kubernetes import client, config
    from kubernetes import watch as kwatch

    api = config.new_client_from_config(config_file=kubeconfig)
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    lists: list[tuple[Callable[..., Any], dict[str, Any], Callable[[Marks, dict[str, Any]], None]]]
    lists = [
        (core.list_namespaced_pod, {"namespace": NAMESPACE}, on_pod),
        (apps.list_namespaced_deployment, {"namespace": NAMESPACE}, on_deployment),
        (core.list_namespaced_service, {"namespace": NAMESPACE}, on_service),
        (custom.list_namespaced_custom_object,
         {"group": "tryon.dev", "version": "v1alpha1", "namespace": NAMESPACE,
          "plural": "tryonmodels"}, on_tryonmodel),
    ]  # fmt: skip

    def run(lister: Callable[..., Any], kwargs: dict[str, Any], handle: Any) -> None:
        while not stop.is_set():
            try:
                stream = kwatch.Watch().stream(
                    lister, **kwargs, timeout_seconds=30, _preload_content=False
                )
                for event in stream:
                    obj = event["raw_object"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        handle(marks, obj)
                    if stop.is_set():
                        return
            except Exception as err:  # a dropped watch: start again
                log(f"watch {lister.__name__}: {err}")
                time.sleep(0.2)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in lists]
    for thread in threads:
        thread.start()
    return threads


def renderer_marks(local: LocalCluster, pod: str, since: float) -> dict[str, float]:
    """The renderer's phase lines of ``pod``, as wall-clock times (its log is in UTC)."""
    try:
        text = local.kubectl("logs", "-n", NAMESPACE, pod)
    except Exception as err:
        log(f"logs of {pod}: {err}")
        return {}
    out: dict[str, float] = {}
    fallback: dict[str, float] = {}
    for line in text.splitlines():
        stamp = LOG_STAMP.match(line)
        if not stamp:
            continue
        when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        seconds = when.replace(tzinfo=dt.UTC).timestamp()
        if seconds < since - 1:
            continue
        for phase, pattern in RENDERER_LINES:
            if phase not in out and pattern.search(line):
                out[phase] = seconds
        tuning = TUNING_S.search(line)
        if tuning and TUNING not in out:
            out[TUNING] = float(tuning.group(1))
        ago = STARTED_AGO.search(line)
        if ago and PROCESS_STARTED not in out:
            out[PROCESS_STARTED] = seconds - float(ago.group(1))
        for phase, pattern in FALLBACK_LINES.items():
            if pattern.search(line):
                fallback.setdefault(phase, seconds)
    for phase, seconds in fallback.items():
        out.setdefault(phase, seconds)
    return out


def save_operator_log(local: LocalCluster, dest: Path) -> None:
    """The operator's log, kept in the workdir for a closer look at its side of each move."""
    try:
        dest.write_text(local.kubectl("logs", "-n", incluster.OPERATOR_NAMESPACE,
                                      "deploy/" + incluster.RELEASE, "--timestamps"))  # fmt: skip
    except Exception as err:
        log(f"operator log: {err}")


def manifest(backends: incluster.DevBackends, tag: str) -> dict[str, Any]:
    return {
        "apiVersion": "tryon.dev/v1alpha1",
        "kind": "TryOnModel",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": {"registeredModel": MODEL, "alias": "production"},
            "renderer": incluster.renderer_spec(backends, tag, replicas=1),
            "service": {"port": 80},
            "rollout": {"autoPromote": True, "progressDeadlineSeconds": 240,
                        "scaleDownDelaySeconds": 1, "postPromotionSeconds": 1,
                        "smokeTest": {"enabled": True}},
        },
    }  # fmt: skip


def one_move(local: LocalCluster, marks: Marks, version: str, logs: Path) -> dict[str, float]:
    """Moves the alias to ``version``; seconds from the move to each phase. The new pod's log
    is kept in ``logs``."""

    def status() -> dict[str, Any]:
        out = local.kubectl("get", "tryonmodel", NAME, "-n", NAMESPACE, "-o", "json")
        return dict(json.loads(out).get("status") or {})

    marks.reset(version)
    promote(MODEL, version)
    moved = time.time()
    wait_until(f"the flip to v{version}", lambda: "Service flipped" in marks.at, 240, 0.05)
    wait_until(f"v{version} Healthy with the rollout finished",
               lambda: (s := status()).get("phase") == "Healthy" and not s.get("rollout"),
               120, 0.5)  # fmt: skip
    at = dict(marks.at)
    at.update(renderer_marks(local, marks.pod, moved))
    (logs / f"renderer-v{version}.log").write_text(
        local.kubectl("logs", "-n", NAMESPACE, marks.pod)
    )
    tuning = at.pop(TUNING, None)
    seconds = {phase: when - moved for phase, when in at.items()}
    if tuning is not None:
        seconds[TUNING] = tuning
    return seconds


def settle(local: LocalCluster, version: str) -> None:
    """Waits until only the serving version's pods are left (the old colour is at zero and its
    pods are gone), so each move starts from the same state."""

    def only_serving() -> bool:
        out = local.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json")
        pods = json.loads(out)["items"]
        return all(p["metadata"]["labels"].get(LABEL_VERSION) == version for p in pods)

    wait_until("the old colour's pods to go", only_serving, 120, 0.5)
    time.sleep(2)


def steps(runs: list[dict[str, float]]) -> list[str]:
    """Each phase's own time: from the phase before it in the same run (an empty phase is
    skipped), median and max across runs. Shape tuning varies most; the sum of medians is not
    the median of sums."""
    lines = [f"{'step (s)':<58} {'median':>7} {'max':>7}"]
    names: list[str] = []
    per_step: dict[str, list[float]] = {}
    for run in runs:
        previous, at = "alias moved", 0.0
        for phase in PHASES:
            if phase not in run:
                continue
            name = f"{previous} -> {phase}".replace("renderer: ", "")
            if name not in per_step:
                names.append(name)
            per_step.setdefault(name, []).append(run[phase] - at)
            previous, at = phase, run[phase]
    for name in names:
        values = per_step[name]
        lines.append(f"{name:<58} {statistics.median(values):>7.2f} {max(values):>7.2f}")
    return lines


def table(runs: list[dict[str, float]]) -> list[str]:
    lines = [f"{'phase (s after the alias move)':<32} {'median':>7} {'max':>7} {'runs':>5}"]
    for phase in PHASES:
        values = [r[phase] for r in runs if phase in r]
        if not values:
            lines.append(f"{phase:<32} {'-':>7} {'-':>7} {0:>5}")
            continue
        lines.append(
            f"{phase:<32} {statistics.median(values):>7.2f} {max(values):>7.2f} {len(values):>5}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / ".bench-flip")
    parser.add_argument("--renderer-tag", default=None, help="default: this checkout's tag")
    parser.add_argument("--operator-tag", default=None, help="default: this checkout's tag")
    args = parser.parse_args(argv)
    renderer_tag = args.renderer_tag or incluster.image_tag()
    operator_tag = args.operator_tag or incluster.image_tag()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)

    local = LocalCluster(args.workdir / "cluster", real_node=True)
    info = local.up()
    backends = None
    stop = threading.Event()
    try:
        backends = incluster.start_dev_backends(args.workdir, local.kubectl)
        os.environ.update(backends.mlflow.env)
        values = incluster.operator_values(backends.tracking_uri_in_cluster, operator_tag)
        incluster.apply(local.kubectl, *incluster.operator_namespace())
        incluster.helm_install_operator(incluster.helm_binary(), info.kubeconfig, values,
                                        args.workdir)  # fmt: skip
        incluster.apply(local.kubectl, *incluster.workload_namespace(NAMESPACE, backends.s3))
        has_account = lambda: local.kubectl("get", "sa", "default", "-n", NAMESPACE)  # noqa: E731
        wait_until("the default ServiceAccount", has_account, 30, 0.5)
        versions = [register(MODEL, seed=i) for i in range(args.runs + 1)]
        log(f"registered versions {versions}; operator {operator_tag}, renderer {renderer_tag}")
        promote(MODEL, versions[0])
        body = json.dumps(manifest(backends, renderer_tag))
        local.kubectl("apply", "-f", "-", input_text=body)
        marks = Marks(version=versions[0])
        watch(info.kubeconfig, marks, stop)
        wait_until("v1 Healthy", lambda: "Service flipped" in marks.at, 400, 0.5)
        settle(local, versions[0])
        runs: list[dict[str, float]] = []
        for version in versions[1:]:
            seconds = one_move(local, marks, version, args.workdir)
            runs.append(seconds)
            log(f"v{version}: " + ", ".join(f"{p} {s:.2f}" for p, s in sorted(
                seconds.items(), key=lambda kv: kv[1])))  # fmt: skip
            settle(local, version)
        save_operator_log(local, args.workdir / "operator.log")
        for line in [*table(runs), "", *steps(runs), ""]:
            print(line)
        flips = [r["Service flipped"] for r in runs]
        sweeps = [r[TUNING] for r in runs if TUNING in r]
        less = [r["Service flipped"] - r[TUNING] for r in runs if TUNING in r]
        if sweeps:  # the renderer's shape sweep varies most from run to run (seconds)
            print(f"shape tuning median {statistics.median(sweeps):.1f} s; "
                  f"alias->flip less it median {statistics.median(less):.1f} s")  # fmt: skip
        print(f"alias->flip median {statistics.median(flips):.1f} s ({len(flips)} runs)")
        return 0
    except TimeoutError as err:
        print(f"flip_timeline: {err}", file=sys.stderr)
        print(incluster.pods_table(local.kubectl, NAMESPACE), file=sys.stderr)
        return 1
    finally:
        stop.set()
        if backends is not None:
            backends.stop()
        local.down()


if __name__ == "__main__":
    sys.exit(main())
