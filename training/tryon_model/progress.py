"""A small progress line for long CLI work (no extra dependency).

On a terminal it redraws one line in place (``label [#####-----] 12/40 3.1/s eta 8s``); when
stderr is not a terminal (CI logs, pipes) it prints a plain line at most every few seconds and
once at the end, so logs stay short. ``TRYON_PROGRESS=0`` silences it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """Counts work units and renders a progress line to `stream` (stderr by default)."""

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_interval_s: float | None = None,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if os.environ.get("TRYON_PROGRESS", "1") == "0":
            enabled = False
        self.enabled = True if enabled is None else enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if min_interval_s is None:
            min_interval_s = 0.1 if self.tty else 5.0
        self.min_interval_s = min_interval_s
        self.count = 0
        self.postfix = ""
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._drawn_count = -1
        self._closed = False

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval_s:
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The progress line as text (without carriage return or newline)."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        parts = [self.label]
        if self.total:
            width = 20
            filled = min(width, int(width * self.count / self.total))
            parts.append("[" + "#" * filled + "-" * (width - filled) + "]")
            parts.append(f"{self.count}/{self.total}")
            if 0 < self.count < self.total and rate > 0:
                parts.append(f"eta {(self.total - self.count) / rate:.0f}s")
        else:
            parts.append(str(self.count))
        parts.append(f"{rate:.1f}/s")
        if self.postfix:
            parts.append(self.postfix)
        return " ".join(parts)

    def _draw(self, now: float, final: bool = False) -> None:
        self._last_draw = now
        if final and not self.tty and self._drawn_count == self.count:
            return  # the last line already shows the final count
        self._drawn_count = self.count
        if not self.enabled:
            return
        line = self.render(now)
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._draw(time.monotonic(), final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], label: str, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` while showing progress."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with Progress(total, label) as bar:
        for item in items:
            yield item
            bar.update()
