"""Process and readiness helpers shared by the control plane (cluster.py) and the real node."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    # A zombie has exited; only its parent has not reaped it yet.
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def http_ok(url: str) -> bool:
    """True when GET ``url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    logs: Path | None,
    *,
    error: type[Exception] = RuntimeError,
    pid: int | None = None,
) -> None:
    """Polls ``check`` until a deadline; stops early if ``pid`` (what should make it true) exits.

    The failure carries the last lines of ``logs``, so it says why, not only what.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not pid_alive(pid):
            what += f" (pid {pid} exited)"
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    tail = ""
    if logs is not None and logs.is_file():
        lines = logs.read_text(errors="replace").splitlines()[-30:]
        tail = f"\n--- last lines of {logs} ---\n" + "\n".join(lines)
    raise error(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
