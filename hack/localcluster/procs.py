"""Process and readiness helpers shared by the control plane (cluster.py) and the real node."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Below Linux's default ephemeral range (32768-60999) and Kubernetes' NodePort range (30000-).
_QUIET_PORT_RANGE = (20000, 30000)


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
    check: Callable[[], Any],
    timeout: float,
    logs: Path | None = None,
    *,
    error: Callable[[str], BaseException] = RuntimeError,
    pid: int | None = None,
    every: float | None = None,
) -> Any:
    """Polls ``check`` until it returns something truthy, and returns that; stops early if ``pid``
    (what should make it true) exits. Polls every ``every`` seconds, or from 0.05 s backing off
    to 0.5 s. The one poll-with-a-deadline of hack/ and bench/ (bench/common.py wraps it).

    The failure, ``error(message)``, carries the last lines of ``logs``, so it says why, not only
    what.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05 if every is None else every
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if pid is not None and not pid_alive(pid):
            what += f" (pid {pid} exited)"
            break
        time.sleep(delay)
        if every is None:
            delay = min(delay * 1.5, 0.5)
    tail = ""
    if logs is not None and logs.is_file():
        lines = logs.read_text(errors="replace").splitlines()[-30:]
        tail = f"\n--- last lines of {logs} ---\n" + "\n".join(lines)
    raise error(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free port on ``host`` (small race window, acceptable in tests)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports on ``host``, outside the kernel's ephemeral range.

    Ports the kernel hands out for ``bind(0)`` are the same ones it gives outgoing connections
    a source port from: `weed mini` once died with "Volume server listener error" because one of
    its own connections took the port chosen for its volume server. Ports below the ephemeral
    (and NodePort) ranges are only taken by someone binding them on purpose; each is checked by
    binding it on ``host``, all held open together so none is handed out twice.
    """
    rng = random.Random()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = rng.randrange(*_QUIET_PORT_RANGE)
            if port in ports:
                continue
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            try:
                sock.bind((host, port))
            except OSError:
                continue
            ports.append(port)
        return ports
