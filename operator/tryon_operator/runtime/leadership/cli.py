"""``python -m tryon_operator.runtime.leadership.cli``: one elector as a process, nothing else.

For tests, the failover benchmark (bench/leader_failover.py) and for watching an election by hand.
It prints one JSON line per happening on stdout (``campaigning``, ``started_leading``,
``stopped_leading``, ``new_leader``; each with ``identity``, ``holder`` where it applies, and
``t``, the wall time) and releases the Lease on SIGTERM or SIGINT, like the operator does on a
graceful shutdown.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ...gateways.client import make_api_client
from .elector import LeaderElector, LeadershipCallbacks
from .lease import LEASE_NAME, ElectionConfig, default_identity, default_namespace, lease_api_client


def _say(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tryon_operator.runtime.leadership.cli")
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster, else KUBECONFIG")
    parser.add_argument("--namespace", default=None)
    parser.add_argument("--name", default=LEASE_NAME)
    parser.add_argument("--identity", default=None)
    parser.add_argument("--lease-seconds", type=int, default=15)
    parser.add_argument("--renew-deadline-seconds", type=float, default=10.0)
    parser.add_argument("--retry-period-seconds", type=float, default=2.0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    api = lease_api_client(make_api_client(args.kubeconfig, pool_size=None, user_agent=None))
    identity = args.identity or default_identity()
    elector = LeaderElector(
        api,
        ElectionConfig(
            identity=identity,
            namespace=default_namespace(args.namespace),
            name=args.name,
            lease_seconds=args.lease_seconds,
            renew_deadline_seconds=args.renew_deadline_seconds,
            retry_period_seconds=args.retry_period_seconds,
        ),
        LeadershipCallbacks(
            on_started_leading=lambda: _say("started_leading", identity=identity),
            on_stopped_leading=lambda: _say("stopped_leading", identity=identity),
            on_new_leader=lambda holder: _say("new_leader", identity=identity, holder=holder),
        ),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    elector.start()
    _say("campaigning", identity=identity)
    stop.wait()
    elector.stop()
    _say("stopped", identity=identity)
    return 0


if __name__ == "__main__":
    sys.exit(main())
