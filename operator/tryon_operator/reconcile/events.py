"""Where every ``Told`` record goes: the Kubernetes Event, then the audit line and the
notification (``Announcer``), all made from the same record so they cannot disagree.

During a reconcile the records are *held* and told only once the status that records the decision
has been written (``release``). A process killed in between (kill -9, a lost Lease) tells nothing,
and the replica that redoes the step from the old status tells it once; telling first would
announce the same promotion twice. A reconcile that fails drops what it held: its retry redoes the
step and tells it then.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
        self._held = threading.local()  # one reconcile per thread: its records so far

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Holds this thread's records until ``release``; drops them if the block fails."""
        self._held.records = []
        try:
            yield
        except BaseException:
            for owner, told in self._held.records:
                log.info(
                    "not told (the reconcile failed before its status was written): %s/%s %s",
                    owner.namespace,
                    owner.name,
                    told.reason,
                )
            raise
        finally:
            self._held.records = None

    def release(self) -> None:
        """Tells what this thread holds: the status that records it has been written."""
        held: list[tuple[Owner, Told]] = getattr(self._held, "records", None) or []
        self._held.records = [] if getattr(self._held, "records", None) is not None else None
        for owner, told in held:
            self._post(owner, told)

    def tell(self, owner: Owner, told: Told) -> None:
        held = getattr(self._held, "records", None)
        if held is not None:
            held.append((owner, told))
            return
        self._post(owner, told)

    def _post(self, owner: Owner, told: Told) -> None:
        log.info("%s/%s %s: %s", owner.namespace, owner.name, told.reason, told.message)
        try:
            self.kube.emit_event(owner, told.type, told.reason, told.message)
        except NotLeaderError:
            raise  # this replica lost the Lease: nothing more may be told or written
        except Exception as err:  # an Event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", told.reason, err)
        self.announcer.decision(owner, told)
