"""Where every ``Told`` record goes: the Kubernetes Event, then the audit line and the
notification (``Announcer``), all made from the same record so they cannot disagree.

A decision that belongs to a rollout carries a ``key`` (reason, version, the rollout's start):
its Event's name is derived from it, so when the decision is redone (the process died between it
and its status write, or the Lease moved on) the Event already exists, and neither it, the audit
line nor the notification is told a second time.
"""

from __future__ import annotations

import logging

from ..announce import Announcer
from ..builders import Owner
from ..errors import NotLeaderError
from ..gateways.ports import KubePort
from ..told import Told as Told

log = logging.getLogger(__name__)


class EventSink:
    """Posts the Event and hands the same record to the audit log and the notifiers."""

    def __init__(self, kube: KubePort, announcer: Announcer) -> None:
        self.kube = kube
        self.announcer = announcer

    def tell(self, owner: Owner, told: Told, key: str | None = None) -> None:
        self._post(owner, told, key)

    def _post(self, owner: Owner, told: Told, key: str | None) -> None:
        log.info("%s/%s %s: %s", owner.namespace, owner.name, told.reason, told.message)
        try:
            if not self.kube.emit_event(owner, told.type, told.reason, told.message, key):
                log.info(
                    "%s/%s %s told before (key %s)", owner.namespace, owner.name, told.reason, key
                )
                return
        except NotLeaderError:
            raise  # this replica lost the Lease: nothing more may be told or written
        except Exception as err:  # an Event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", told.reason, err)
        self.announcer.decision(owner, told)
