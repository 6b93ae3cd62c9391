"""What the elector calls back, and where: the callbacks run in order on a thread of their
own, never on the renewing thread, so a slow ``on_stopped_leading`` cannot cost a renewal."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeadershipCallbacks:
    """What the wiring hooks in; each runs on the callback thread, in order, and must not block
    for long (start or stop the work queue, don't run it)."""

    on_started_leading: Callable[[], None] | None = None
    on_stopped_leading: Callable[[], None] | None = None
    on_new_leader: Callable[[str | None], None] | None = None  # the holder seen (None: nobody)


class CallbackThread:
    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], None], threading.Event] | None] = queue.Queue()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name="leader-election-callbacks", daemon=True
            )
            self.thread.start()

    def dispatch(self, fn: Callable[[], None]) -> threading.Event:
        """Queues ``fn``; the returned event is set once it has run (or failed, logged)."""
        done = threading.Event()
        self._jobs.put((fn, done))
        return done

    def finish(self) -> None:
        """Runs what is queued, then ends the thread."""
        self._jobs.put(None)

    def join(self, timeout: float) -> None:
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            fn, done = item
            try:
                fn()
            except Exception:  # a callback must not end the others
                log.exception("leader election: a callback failed")
            finally:
                done.set()
