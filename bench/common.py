"""What the benchmarks here share: a timestamped progress line on stderr (stdout is the report),
a poll with a deadline that returns what it waited for, percentiles, and the smoke stub that
stands in for a renderer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from hack.localcluster import procs


def log(text: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {text}", file=sys.stderr, flush=True)


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.05) -> Any:
    """``check()``'s first truthy value; TimeoutError naming ``what`` after ``timeout`` seconds."""
    return procs.wait_until(what, check, timeout, error=TimeoutError, every=every)


def percentile(
    values: list[float], q: float, *, method: Literal["linear", "nearest"] = "linear"
) -> float:
    """The ``q`` quantile (0..1) of ``values``; NaN when there are none. ``linear`` interpolates
    between the two nearest ranks; ``nearest`` takes the nearest rank (the renderer benchmark's
    published figures use it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    if method == "nearest":
        return ordered[min(len(ordered) - 1, max(0, round(pos)))]
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class SmokeStub:
    """A renderer that passes every smoke test at once (POST: ``{"passed": true}``), and a web
    metric for Argo's analysis (GET: ``{"ok": true}``). Each smoke call to
    ``/<namespace>/<service>/...`` is recorded with its (monotonic) time."""

    port: int = 0
    smoke_calls: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SmokeStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                parts = self.path.strip("/").split("/")
                if len(parts) >= 2:
                    with stub.lock:
                        stub.smoke_calls.setdefault((parts[0], parts[1]), []).append(
                            time.monotonic()
                        )
                self._json({"passed": True, "reason": "bench stub"})

            def do_GET(self) -> None:
                self._json({"ok": True})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def last_smoke(self, namespace: str, service: str, since: float) -> float | None:
        with self.lock:
            calls = [t for t in self.smoke_calls.get((namespace, service), []) if t >= since]
        return calls[-1] if calls else None
