"""The renderer as a real `python -m tryon_renderer` uvicorn process: registry model, HTTP API,
SIGTERM drain, and schemathesis fuzzing of the OpenAPI spec against the live server."""

from __future__ import annotations

import concurrent.futures
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from PIL import Image
from schemathesis.checks import not_a_server_error
from tryon_renderer.contract import ModelContract
from tryon_renderer.network import TryOnConfig, TryOnNet
from tryon_renderer.packaging import write_model_dir

from tests.support.servers import free_port

from .conftest import INPUT_BUCKET, RegisteredModels

pytestmark = pytest.mark.integration
FUZZ_EXAMPLES = 100


@dataclass
class RendererProcess:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def _start(env_extra: dict[str, str], tmp: Path, timeout_s: float = 120) -> RendererProcess:
    port = free_port()
    env = {**os.environ, **env_extra, "TRYON_PORT": str(port), "TRYON_HOST": "127.0.0.1"}
    env.setdefault("TRYON_CACHE_DIR", str(tmp / "cache"))
    log_path = tmp / f"renderer-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tryon_renderer"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    rp = RendererProcess(proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"renderer exited early:\n{rp.log()}"
        try:
            if httpx.get(f"{rp.base_url}/readyz", timeout=2).status_code == 200:
                return rp
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(rp)
    raise AssertionError(f"renderer not ready:\n{rp.log()}")


def _stop(rp: RendererProcess) -> None:
    if rp.proc.poll() is None:
        os.killpg(rp.proc.pid, signal.SIGTERM)
        try:
            rp.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(rp.proc.pid, signal.SIGKILL)
            rp.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def renderer(
    registered: RegisteredModels, renderer_env: dict[str, str], tmp_path_factory
) -> Iterator[RendererProcess]:
    env = {
        "TRYON_MODEL_URI": f"models:/{registered.name}/{registered.good_version}",
        "TRYON_ALLOWED_BUCKET": INPUT_BUCKET,
        "TRYON_MAX_BATCH_SIZE": "4",
        "TRYON_MAX_WAIT_MS": "10",
        "TRYON_TORCH_THREADS": "1",
    }
    rp = _start(env, tmp_path_factory.mktemp("renderer"))
    yield rp
    _stop(rp)


def _png(size: tuple[int, int] = (60, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buf, "PNG")
    return buf.getvalue()


def _files() -> dict:
    return {"person": ("p.png", _png(), "image/png"), "garment": ("g.png", _png(), "image/png")}


def test_process_serves_registry_model(renderer: RendererProcess, registered) -> None:
    resp = httpx.post(f"{renderer.base_url}/v1/tryon", files=_files(), timeout=30)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert resp.headers["x-model-version"] == registered.good_version
    smoke = httpx.post(f"{renderer.base_url}/v1/smoke", timeout=30).json()
    assert smoke["passed"] is True and smoke["model_version"] == registered.good_version
    metrics = httpx.get(f"{renderer.base_url}/metrics").text
    assert 'tryon_request_duration_seconds_count{outcome="ok"}' in metrics


def test_process_survives_bad_input_burst(renderer: RendererProcess) -> None:
    bad = [b"", b"junk", _png()[:40], b"\xff\xd8\xff" + b"\0" * 100]
    with httpx.Client(base_url=renderer.base_url, timeout=30) as client:
        for data in bad:
            files = {"person": ("p", data, "image/png"), "garment": ("g", _png(), "image/png")}
            resp = client.post("/v1/tryon", files=files)
            assert 400 <= resp.status_code < 500 and resp.json()["error"]["code"]
        assert client.post("/v1/tryon", files=_files()).status_code == 200
    assert renderer.proc.poll() is None


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    """Requests accepted before SIGTERM all complete with 200; the process exits cleanly."""
    torch_net = TryOnNet(TryOnConfig(base_width=16))
    model = write_model_dir(
        torch_net, tmp_path / "m", contract=ModelContract(height=256, width=192)
    )
    rp = _start(
        {
            "TRYON_MODEL_PATH": str(model),
            "TRYON_MAX_BATCH_SIZE": "2",
            "TRYON_MAX_WAIT_MS": "1",
            "TRYON_TORCH_THREADS": "1",
        },
        tmp_path,
    )
    n = 8
    try:
        together = threading.Barrier(n)
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(_post_together, together, rp.base_url) for _ in range(n)]
            _wait_all_accepted(rp, n, min_in_flight=3)
            rp.proc.send_signal(signal.SIGTERM)
            statuses = [f.result().status_code for f in futures]
        assert statuses == [200] * n, rp.log()
        # uvicorn re-raises the captured SIGTERM after a complete graceful shutdown.
        assert rp.proc.wait(timeout=60) in (0, -signal.SIGTERM), rp.log()
        assert "Application shutdown complete" in rp.log()
    finally:
        _stop(rp)


def _post_together(together: threading.Barrier, base_url: str) -> httpx.Response:
    """Posts once every thread has its client ready: requests that trickle in (a client's set-up
    on a loaded machine) can all finish before enough are in flight at once."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        together.wait(timeout=30)
        return client.post("/v1/tryon", files=_files())


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _wait_all_accepted(rp: RendererProcess, n: int, min_in_flight: int) -> None:
    """Poll /metrics until every request is either in flight or done, and enough are in flight."""
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{rp.base_url}/metrics").text
        in_flight = _metric(text, "tryon_in_flight_requests")
        done = _metric(text, 'tryon_request_duration_seconds_count{outcome="ok"}')
        if in_flight + done >= n and in_flight >= min_in_flight:
            return
        assert time.monotonic() < deadline, f"in flight {in_flight}, done {done}"
        time.sleep(0.01)


# --- schemathesis: fuzz every operation from the live OpenAPI spec ----------------------------


def _fuzz_operation(operation, base_url: str, counts: dict[str, int]) -> None:
    """Hypothesis-drive one operation with schemathesis-generated cases."""
    key = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case) -> None:
        response = case.call(base_url=base_url, timeout=30)
        counts[key] = counts.get(key, 0) + 1
        case.validate_response(response, checks=(not_a_server_error,))
        assert response.headers.get("x-model-version")

    run()


def test_fuzz_openapi_never_5xx(renderer: RendererProcess) -> None:
    """No generated request (valid or not) may produce a 5xx or drop X-Model-Version."""
    schema = schemathesis.openapi.from_url(f"{renderer.base_url}/openapi.json")
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), renderer.base_url, counts)
    print("schemathesis requests per operation:", counts, "total:", sum(counts.values()))
    assert counts.get("POST /v1/tryon", 0) >= 10
    assert renderer.proc.poll() is None
    assert httpx.get(f"{renderer.base_url}/readyz").status_code == 200


def test_model_that_can_never_load_ends_the_process_with_exit_code_3(tmp_path: Path) -> None:
    """An incompatible model becomes a visible CrashLoopBackOff, not a pod that is never Ready."""
    model_dir = write_model_dir(TryOnNet(), tmp_path / "model", failure_mode="unloadable")
    port = free_port()
    env = {**os.environ, "TRYON_MODEL_PATH": str(model_dir), "TRYON_PORT": str(port),
           "TRYON_HOST": "127.0.0.1", "TRYON_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    log_path = tmp_path / "renderer.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tryon_renderer"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 3, log_path.read_text(errors="replace")[-3000:]
    assert "can never load" in log_path.read_text(errors="replace")
