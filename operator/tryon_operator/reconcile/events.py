"""Where every ``Told`` record goes: the Kubernetes Event, then the audit line and the
notification (``Announcer``), all made from the same record so they cannot disagree."""

from __future__ import annotations

import logging

from ..announce import Announcer
from ..builders import Owner
from ..errors import NotLeaderError
from ..told import Told as Told
from .ports import KubePort

log = logging.getLogger(__name__)


class EventSink:
    """Posts the Event and hands the same record to the audit log and the notifiers."""

    def __init__(self, kube: KubePort, announcer: Announcer) -> None:
        self.kube = kube
        self.announcer = announcer

    def tell(self, owner: Owner, told: Told) -> None:
        log.info("%s/%s %s: %s", owner.namespace, owner.name, told.reason, told.message)
        try:
            self.kube.emit_event(owner, told.type, told.reason, told.message)
        except NotLeaderError:
            raise  # this replica lost the Lease: nothing more may be told or written
        except Exception as err:  # an Event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", told.reason, err)
        self.announcer.decision(owner, told)
