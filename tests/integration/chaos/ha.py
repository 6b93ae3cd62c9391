"""High-availability faults for the chaos run: two operator replicas under leader election, the
leader SIGKILLed or SIGSTOPped past its Lease. A double action (two ``Promoted`` or two
``RolledBack`` Events for one version in one iteration) counts as a violation."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.integration.chaos.invariants import Violation

if TYPE_CHECKING:
    from tests.integration.chaos.engine import ChaosRun

LEASE = "tryon-operator"
# Short timings keep a failover within the chaos run's recovery bounds; the production defaults
# (15 / 10 / 2 s) are measured in tests/integration/operator/test_op_high_availability.py.
TIMINGS = {
    "TRYON_LEADER_ELECTION_LEASE_SECONDS": "4",
    "TRYON_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "3",
    "TRYON_LEADER_ELECTION_RETRY_PERIOD_SECONDS": "0.5",
}
LEASE_SECONDS = 4.0
DOUBLE_CHECKED = ("Promoted", "RolledBack")


def leader(run: ChaosRun) -> Any | None:
    """The replica process holding the Lease now, if any."""
    world = run.world
    try:
        lease = client.CoordinationV1Api(world.api).read_namespaced_lease(LEASE, world.namespace)
    except ApiException:
        return None
    holder = lease.spec.holder_identity
    return next((p for p in world.replicas if p.env.get("TRYON_POD_NAME") == holder), None)


class LeaderKill:
    name: ClassVar[str] = "leader-sigkill+restart"
    weight: ClassVar[float] = 2.0
    may_fail_pods: ClassVar[bool] = False

    def inject(self, run: ChaosRun) -> bool:
        proc = leader(run)
        if proc is None:
            return False
        proc.stop(kill=True)
        time.sleep(run.rng.uniform(0.0, 1.5))
        proc.start()  # back as a standby: the other replica takes the Lease when it expires
        return True


class LeaderPause:
    name: ClassVar[str] = "leader-sigstop>lease"
    weight: ClassVar[float] = 1.0
    may_fail_pods: ClassVar[bool] = False

    def inject(self, run: ChaosRun) -> bool:
        proc = leader(run)
        if proc is None or proc.proc is None:
            return False
        proc.proc.send_signal(signal.SIGSTOP)

        def wake() -> None:
            time.sleep(LEASE_SECONDS + run.rng.uniform(0.5, 2.0))
            proc.proc.send_signal(signal.SIGCONT)  # it must step down, not write

        thread = threading.Thread(target=wake, daemon=True)
        thread.start()
        run.background.append(thread)
        return True


def double_actions(run: ChaosRun, since: datetime) -> list[Violation]:
    """Two Events of one decision for one version within one iteration: done twice."""
    events = client.CoreV1Api(run.world.api).list_namespaced_event(run.world.namespace).items
    seen: Counter[tuple[str, str]] = Counter()
    for event in events:
        stamp = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
        if event.reason not in DOUBLE_CHECKED or stamp is None or stamp < since:
            continue
        version = _version_in(event.message or "")
        if version is not None:
            seen[(event.reason, version)] += 1
    return [Violation("no-double-action", f"{reason} for version {version} told {n} times")
            for (reason, version), n in seen.items() if n > 1]


def _version_in(message: str) -> str | None:
    """``... (version 7) ...`` or ``version 7 ...`` as the operator writes them."""
    for marker in ("(version ", "version "):
        at = message.find(marker)
        if at >= 0:
            rest = message[at + len(marker):]
            return rest.split(")")[0].split(" ")[0].strip(";,") or None
    return None
