"""``tryonctl`` (also ``kubectl tryon``, as a kubectl plugin): see and steer TryOnModel rollouts.

Reads go to the API server; every change is a declarative patch of the TryOnModel (a one-shot
request annotation the operator consumes, or ``spec.paused``), so the CLI needs no operator API
and the operator stays the only writer of children and status.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..api.models import parse_status
from ..api.vocabulary import ANNOTATION_PROMOTE, ANNOTATION_RETRY, ANNOTATION_ROLLBACK, EventReason
from . import history as hist
from .client import Cluster, CtlError
from .views import (
    EXIT_DEGRADED,
    EXIT_PROGRESSING,
    exit_code,
    render_list,
    render_status,
    summary,
    waiting_for,
)

POLL_SECONDS = 1.0
IGNORED: EventReason = "ManualRequestIgnored"  # the operator's answer to a request it cannot do


def _duration(raw: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h`` -> seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh]?)", raw.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (use e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _now() -> datetime:
    return datetime.now(UTC)


class Ctl:
    """The subcommands; ``out`` prints (tests and the kubectl plugin share it)."""

    def __init__(self, cluster: Cluster, out: Callable[[str], None] = print) -> None:
        self.cluster = cluster
        self.out = out

    def _ns(self, args: argparse.Namespace) -> str:
        return str(args.namespace or self.cluster.default_namespace)

    # ------------------------------------------------------------------ reads

    def cmd_status(self, args: argparse.Namespace) -> int:
        ns = self._ns(args)
        if not args.watch:
            body = self.cluster.get(ns, args.name)
            pods = self.cluster.pods(ns, args.name)
            events = self.cluster.events(ns, args.name, args.events)
            self.out(render_status(body, pods, events, _now()))
            code = exit_code(body)
            return EXIT_PROGRESSING if code is None else code
        deadline = time.monotonic() + args.timeout if args.timeout else None
        last = ""
        while True:
            body = self.cluster.get(ns, args.name)
            line = summary(body)
            if line != last:
                self.out(line)
                last = line
            code = exit_code(body)
            if code is not None:
                return code
            hint = waiting_for(body)
            if hint is not None:
                self.out(f"Waiting - {hint}")
                return EXIT_PROGRESSING
            if deadline is not None and time.monotonic() >= deadline:
                self.out(f"error: timed out after {args.timeout:g}s: {line}")
                return EXIT_PROGRESSING
            time.sleep(POLL_SECONDS)

    def cmd_list(self, args: argparse.Namespace) -> int:
        namespace = None if args.all_namespaces else self._ns(args)
        items = self.cluster.list_models(namespace)
        if not items:
            where = "any namespace" if namespace is None else f"namespace {namespace}"
            self.out(f"No TryOnModels found in {where}.")
            return 0
        self.out(render_list(items, _now(), namespaces=namespace is None))
        return 0

    def cmd_history(self, args: argparse.Namespace) -> int:
        ns = self._ns(args)
        body = self.cluster.get(ns, args.name)
        status = parse_status(body.get("status"))
        registered = str(((body.get("spec") or {}).get("model") or {}).get("registeredModel", ""))
        tags = None
        if args.mlflow and registered:
            tags = hist.read_tags(args.mlflow, registered, {h.version for h in status.history})
        if args.output == "json":
            self.out(json.dumps(hist.as_json(status, tags), indent=2))
        else:
            self.out(hist.render(args.name, ns, status, tags))
        return 0

    # ------------------------------------------------------------------ requests

    def cmd_promote(self, args: argparse.Namespace) -> int:
        ns = self._ns(args)
        body = self.cluster.get(ns, args.name)
        status = parse_status(body.get("status"))
        rollout = status.rollout
        if rollout is None or rollout.phase == "PostPromotion":
            raise CtlError(
                f"nothing to promote: no rollout is waiting; version "
                f"{status.active_version or '-'} serves on {status.active_color or '-'}"
            )
        if args.version is not None and args.version != rollout.version:
            raise CtlError(
                f"version {args.version} is not the one rolling out (version {rollout.version} "
                f"on {rollout.color})"
            )
        when = "now" if rollout.phase == "AwaitingPromotion" else "once Ready and tested"
        return self._request(
            args,
            body,
            ANNOTATION_PROMOTE,
            rollout.version,
            f"promotion of version {rollout.version} on {rollout.color} requested ({when})",
        )

    def cmd_rollback(self, args: argparse.Namespace) -> int:
        ns = self._ns(args)
        body = self.cluster.get(ns, args.name)
        status = parse_status(body.get("status"))
        rollout = status.rollout
        if rollout is None:
            raise CtlError(
                f"nothing to roll back: no rollout is in progress; version "
                f"{status.active_version or '-'} serves on {status.active_color or '-'}. "
                "To serve an older version move the MLflow alias (`tryon-model rollback`) "
                "or pin spec.model.version"
            )
        if rollout.phase == "PostPromotion" and rollout.previous_color is None:
            raise CtlError(
                f"version {rollout.version} is the first one deployed: there is no previous "
                "colour to return to"
            )
        what = (
            f"traffic back to {rollout.previous_color} (version {rollout.previous_version})"
            if rollout.phase == "PostPromotion"
            else f"abort the preview, traffic stays on {status.active_color or 'none'}"
        )
        return self._request(
            args,
            body,
            ANNOTATION_ROLLBACK,
            rollout.version,
            f"rollback of version {rollout.version} on {rollout.color} requested ({what})",
        )

    def cmd_retry(self, args: argparse.Namespace) -> int:
        ns = self._ns(args)
        body = self.cluster.get(ns, args.name)
        try:
            parse_status(body.get("status")).clearing_rejection(args.version)
        except ValueError as err:
            raise CtlError(str(err)) from err
        return self._request(
            args,
            body,
            ANNOTATION_RETRY,
            args.version,
            f"retry of version {args.version} requested (its rejection is cleared; it rolls out "
            "again while the model selector resolves to it)",
        )

    def _request(
        self, args: argparse.Namespace, body: dict[str, Any], key: str, value: str, said: str
    ) -> int:
        ns, name = self._ns(args), args.name
        seen = set(self.cluster.events(ns, name, 50)) if args.wait else set()
        self.cluster.patch(ns, name, {"metadata": {"annotations": {key: value}}})
        self.out(f"tryonmodel {ns}/{name}: {said}")
        if (body.get("spec") or {}).get("paused"):
            self.out("note: it is paused; the request is acted on after `tryonctl resume`")
        if not args.wait:
            return 0
        deadline = time.monotonic() + args.timeout
        while key in ((self.cluster.get(ns, name).get("metadata") or {}).get("annotations") or {}):
            if time.monotonic() >= deadline:
                self.out(
                    f"error: the operator has not acted on {key}={value} after "
                    f"{args.timeout:g}s (is it running?)"
                )
                return EXIT_PROGRESSING
            time.sleep(0.25)
        code = 0
        for event in self.cluster.events(ns, name, 50):
            if event not in seen:
                self.out(f"{event.type} {event.reason}: {event.message}")
                if event.reason == IGNORED and key in event.message:
                    code = EXIT_DEGRADED
        return code

    # ------------------------------------------------------------------ pause

    def cmd_pause(self, args: argparse.Namespace) -> int:
        return self._set_paused(args, True)

    def cmd_resume(self, args: argparse.Namespace) -> int:
        return self._set_paused(args, False)

    def _set_paused(self, args: argparse.Namespace, paused: bool) -> int:
        ns = self._ns(args)
        body = self.cluster.get(ns, args.name)
        word = "paused" if paused else "resumed"
        if bool((body.get("spec") or {}).get("paused")) == paused:
            self.out(f"tryonmodel {ns}/{args.name} already {word}")
            return 0
        self.cluster.patch(ns, args.name, {"spec": {"paused": paused}})
        self.out(f"tryonmodel {ns}/{args.name} {word}")
        return 0


def build_parser(prog: str = "tryonctl") -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="default: the kubeconfig context's namespace")
    common.add_argument("--kubeconfig", help="default: $KUBECONFIG, then ~/.kube/config")
    common.add_argument("--context", help="kubeconfig context to use")
    parser = argparse.ArgumentParser(
        prog=prog,
        description="See and steer TryOnModel blue/green rollouts.",
        epilog="exit codes of status: 0 Healthy, 1 Degraded or error, 2 not finished",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("status", parents=[common], help="phase, versions, pods, conditions, events")
    p.add_argument("name")
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="print each change until Healthy, Degraded or waiting for a person",
    )
    p.add_argument(
        "-t",
        "--timeout",
        type=_duration,
        default=0.0,
        help="with --watch: give up after this long (exit 2), e.g. 5m",
    )
    p.add_argument("--events", type=int, default=5, metavar="N", help="last N Events (5)")

    p = sub.add_parser("list", parents=[common], help="all TryOnModels of a namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")

    p = sub.add_parser("history", parents=[common], help="which version served when, and why")
    p.add_argument("name")
    p.add_argument(
        "--mlflow",
        metavar="TRACKING_URI",
        help="also show the model-version tags from this MLflow server",
    )
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")

    def request(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_)
        p.add_argument("name")
        p.add_argument(
            "--wait",
            action="store_true",
            help="wait until the operator acted and print what it did",
        )
        p.add_argument("--timeout", type=_duration, default=60.0, help="with --wait (60s)")
        return p

    p = request("promote", "promote the preview (rollout.autoPromote: false)")
    p.add_argument("--version", help="only if this is the version rolling out")
    request("rollback", "abort the rollout in progress, or flip back while the old colour is warm")
    p = request("retry", "clear the rejection of a version so it may roll out again")
    p.add_argument("version")
    for name, help_ in (
        ("pause", "set spec.paused: freeze everything"),
        ("resume", "clear spec.paused"),
    ):
        sub.add_parser(name, parents=[common], help=help_).add_argument("name")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "tryonctl") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        ctl = Ctl(Cluster(args.kubeconfig, args.context))
        command: Callable[[argparse.Namespace], int] = getattr(ctl, f"cmd_{args.command}")
        return command(args)
    except CtlError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DEGRADED
    except KeyboardInterrupt:
        return 130


def kubectl_plugin() -> int:
    """Entry point of ``kubectl-tryon``: ``kubectl tryon status NAME`` runs this."""
    return main(prog="kubectl tryon")
