"""Real traffic for Services of the local cluster, whose pods are only simulated by kwok.

kwok gives pods a lifecycle but runs no containers, so nothing answers on a Service. This proxy
plays kube-proxy and kubelet for HTTP: a request to ``http://127.0.0.1:<port>/<namespace>/<service>/<path>``
is routed by the Service's *current* selector to its Ready pods, and served by a real
``tryon-renderer`` process started with that pod's container environment (so it loads exactly the
model version the pod is pinned to). One process per distinct environment, started on first use.

The operator reaches Services through its URL template, so pointing it here
(``TRYON_SERVICE_URL_TEMPLATE=http://127.0.0.1:<port>/{namespace}/{service}``) makes its smoke gate
call a real renderer; the demo uses the same route to show shoppers' traffic following the flip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from kubernetes import client, config

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
    "proxy-connection",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NoEndpointsError(Exception):
    """The Service selects no Ready pod: what a real client sees as a refused connection."""


@dataclass
class RendererProcess:
    """One real renderer, standing in for every pod with the same container environment."""

    env_key: tuple[tuple[str, str], ...]
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RendererPool:
    """Starts renderer processes on demand and stops them all at the end."""

    base_env: Mapping[str, str]
    log_dir: Path
    ready_timeout: float = 180.0
    _by_env: dict[tuple[tuple[str, str], ...], RendererProcess] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, pod_env: Mapping[str, str]) -> RendererProcess:
        key = tuple(sorted(pod_env.items()))
        with self._lock:
            existing = self._by_env.get(key)
            if existing is not None and existing.process.poll() is None:
                return existing
            started = self._start(key)
            self._by_env[key] = started
        self._wait_ready(started)
        return started

    def _start(self, key: tuple[tuple[str, str], ...]) -> RendererProcess:
        port = _free_port()
        env = {
            **os.environ,
            **self.base_env,
            **dict(key),
            "TRYON_HOST": "127.0.0.1",
            "TRYON_PORT": str(port),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        version = dict(key).get("TRYON_MODEL_VERSION", "x")
        log_path = self.log_dir / f"renderer-v{version}-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "tryon_renderer"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return RendererProcess(key, port, process, log_path)

    def _wait_ready(self, renderer: RendererProcess) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if renderer.process.poll() is not None:
                raise NoEndpointsError(
                    f"renderer exited with {renderer.process.returncode}; see {renderer.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(renderer.url + "/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise NoEndpointsError(
            f"renderer not ready after {self.ready_timeout}s; see {renderer.log_path}"
        )

    def stop_all(self) -> None:
        for renderer in self._by_env.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(renderer.process.pid, signal.SIGTERM)
        for renderer in self._by_env.values():
            try:
                renderer.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(renderer.process.pid, signal.SIGKILL)
        self._by_env.clear()


@dataclass
class ServiceResolver:
    """Finds, through the real API, the environment of a Ready pod behind a Service."""

    core: client.CoreV1Api

    def pod_env(self, namespace: str, service: str) -> dict[str, str]:
        svc = self.core.read_namespaced_service(service, namespace)
        selector = svc.spec.selector or {}
        if not selector:
            raise NoEndpointsError(f"service {namespace}/{service} has no selector")
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector).items
        ready = [
            p
            for p in pods
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]
        if not ready:
            raise NoEndpointsError(f"service {namespace}/{service} has no Ready endpoints")
        container = ready[0].spec.containers[0]
        return {e.name: e.value for e in (container.env or []) if e.value is not None}


def make_handler(resolver: ServiceResolver, pool: RendererPool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            parts = self.path.lstrip("/").split("/", 2)
            if len(parts) < 2:
                self._reply(404, b'{"error": "use /<namespace>/<service>/<path>"}')
                return
            namespace, service = parts[0], parts[1]
            rest = "/" + (parts[2] if len(parts) == 3 else "")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                renderer = pool.get(resolver.pod_env(namespace, service))
            except (NoEndpointsError, client.ApiException) as err:
                detail = getattr(err, "reason", None) or str(err)
                self._reply(503, json.dumps({"error": str(detail)}).encode())
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            try:
                upstream = httpx.request(
                    self.command, renderer.url + rest, content=body, headers=headers, timeout=120
                )
            except httpx.HTTPError as err:
                self._reply(502, json.dumps({"error": str(err)}).encode())
                return
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            self._reply(upstream.status_code, upstream.content, out_headers)

        def _reply(
            self, status: int, body: bytes, headers: Mapping[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for key, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _forward  # noqa: N815 - names fixed by BaseHTTPRequestHandler

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextlib.contextmanager
def serve(kubeconfig: str, base_env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """Runs the proxy in a thread; yields the operator's ``service_url_template`` for it."""
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    pool = RendererPool(base_env, log_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(ServiceResolver(core), pool))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}" + "/{namespace}/{service}"
    finally:
        server.shutdown()
        server.server_close()
        pool.stop_all()
