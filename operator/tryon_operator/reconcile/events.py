"""Where every ``Told`` record goes: the Kubernetes Event, then the audit line and the
notification (``Announcer``), all made from the same record so they cannot disagree.

A decision that belongs to a rollout carries a ``key`` (reason, version, the rollout's start):
its Event's name is derived from it, so when the decision is redone (the process died between it
and its status write, or the Lease moved on) the Event already exists, and neither it nor the audit
line is told a second time. Its notification is sent again only when the Event lacks
``tryon.dev/notified``, which is set once every target is done with it: a replica that stopped
between the Event and the sending leaves it to the next one (at least once; twice only when it
stopped between the sending and the mark).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..announce.announcer import Announcer
from ..announce.told import Told as Told
from ..api.builders import Owner
from ..api.errors import NotLeaderError
from ..gateways.ports import KubePort

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
                self._finish_notification(owner, told, key)
                return
        except NotLeaderError:
            raise  # this replica lost the Lease: nothing more may be told or written
        except Exception as err:  # an Event is worth less than the reconcile that emits it
            log.warning("could not post event %s: %s", told.reason, err)
        self.announcer.decision(owner, told, self._marker(owner, key), key)

    def _finish_notification(self, owner: Owner, told: Told, key: str | None) -> None:
        """A decision told before: its notification again if nobody confirmed it went out."""
        if key is None or not self.announcer.wants_notification(owner, told):
            return
        try:
            if self.kube.event_notified(owner, key):
                return
        except Exception as err:  # unknown: leave it; a duplicate is worse than a guess
            log.warning("could not read back the %s Event: %s", told.reason, err)
            return
        log.info("%s/%s %s: its notification was not confirmed; sending it", owner.namespace,
                 owner.name, told.reason)  # fmt: skip
        self.announcer.renotify(owner, told, self._marker(owner, key), key)

    def _marker(self, owner: Owner, key: str | None) -> Callable[[], None] | None:
        if key is None:
            return None

        def mark() -> None:
            try:
                self.kube.mark_event_notified(owner, key)
            except NotLeaderError:
                log.info("not leading: the next leader sends the %s notification again", key)
            except Exception as err:
                log.warning("could not mark the Event of %s notified: %s", key, err)

        return mark
