"""Benchmark: the renderer vs a naive FastAPI+torch server vs the raw batched forward pass.

Why three: the naive server (each request runs its own forward pass, as most first versions do)
shows what micro-batching buys; the raw forward pass at the same batch size, with no HTTP, shows
what the serving stack costs. One run, one machine, servers started one at a time on loopback so
they never compete for cores. Bounded in requests and wall time per level.

    .venv/bin/python bench/renderer_bench.py [--concurrency 1,4,16,64] [--requests-per-level N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import Response
from PIL import Image
from tryon_renderer.contract import ModelContract
from tryon_renderer.golden import synthetic_garment, synthetic_person
from tryon_renderer.network import TryOnConfig, TryOnNet
from tryon_renderer.packaging import write_model_dir


@dataclass
class LevelResult:
    """Throughput (requests or images per second) and latency percentiles in ms."""

    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    batch: int = 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the naive baseline server ----------------------------------------------------------------


def naive_app(model_dir: Path) -> FastAPI:
    """FastAPI + torch, one forward pass per request in FastAPI's thread pool, no batching."""
    from fastapi import FastAPI
    from fastapi.responses import Response
    from tryon_renderer.images import encode_image, to_tensor
    from tryon_renderer.loading import load_from_dir

    model, contract, _ = load_from_dir(model_dir)
    model.eval()
    app = FastAPI()

    @app.post("/v1/tryon")
    def tryon(
        person: UploadFile = File(...),  # noqa: B008
        garment: UploadFile = File(...),  # noqa: B008
        category: str = Form("upper"),
    ) -> Response:
        p = Image.open(io.BytesIO(person.file.read())).convert("RGB")
        g = Image.open(io.BytesIO(garment.file.read())).convert("RGB")
        with torch.no_grad():
            out = model(
                to_tensor(p, contract.height, contract.width)[None],
                to_tensor(g, contract.height, contract.width)[None],
                torch.tensor([contract.category_index(category)]),
            )[0]
        return Response(encode_image(out), media_type="image/png")

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def serve_naive(model_dir: Path, port: int) -> None:
    import uvicorn

    uvicorn.run(naive_app(model_dir), host="127.0.0.1", port=port, log_level="warning")


# --- load generation --------------------------------------------------------------------------


def multipart_body(contract: ModelContract) -> tuple[bytes, str]:
    """Pre-encode one multipart body so the client spends almost no CPU per request."""

    def jpeg(img) -> bytes:  # type: ignore[no-untyped-def]
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    boundary = "benchboundary7f3a"
    parts = []
    for name, data in (
        ("person", jpeg(synthetic_person(contract, 1))),
        ("garment", jpeg(synthetic_garment(contract, 1))),
    ):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def drive(
    url: str, body: bytes, ctype: str, concurrency: int, total: int, max_s: float
) -> LevelResult:
    """`concurrency` closed-loop clients send `total` requests (or stop at max_s)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + max_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued, errors
        while issued < total and time.perf_counter() < deadline:
            issued += 1
            start = time.perf_counter()
            resp = await client.post(url, content=body, headers={"content-type": ctype})
            if resp.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LevelResult(
        throughput=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 0.5) * 1000 if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99) * 1000 if latencies else float("nan"),
        errors=errors,
    )


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base_url} not ready")


def start_server(
    argv: list[str], env: dict[str, str], port: int, log: Path
) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            argv, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench_server(
    name: str,
    argv: list[str],
    env: dict[str, str],
    port: int,
    levels: list[int],
    args: argparse.Namespace,
    body: tuple[bytes, str],
    workdir: Path,
) -> dict[int, LevelResult]:
    proc = start_server(argv, env, port, workdir / f"{name}.log")
    url = f"http://127.0.0.1:{port}/v1/tryon"
    results: dict[int, LevelResult] = {}
    try:
        asyncio.run(drive(url, *body, concurrency=2, total=4, max_s=60))  # warm-up
        for c in levels:
            total = max(args.requests_per_level, 2 * c)
            results[c] = asyncio.run(drive(url, *body, c, total, args.max_seconds_per_level))
            r = results[c]
            print(f"  {name:8s} c={c:<3d} {r.throughput:7.2f} req/s  p50 {r.p50_ms:8.1f} ms  "
                  f"p99 {r.p99_ms:8.1f} ms  errors {r.errors}", flush=True)  # fmt: skip
    finally:
        stop_server(proc)
    return results


def bench_raw(
    model: TryOnNet, contract: ModelContract, levels: list[int], max_batch: int, reps: int
) -> dict[int, LevelResult]:
    """Forward throughput (images/s) at the batch size the renderer can reach at each level."""
    from tryon_renderer.batching import BatchRunner

    runner = BatchRunner(model, torch.device("cpu"))
    results: dict[int, LevelResult] = {}
    for c in levels:
        batch = min(c, max_batch)
        x = torch.rand(batch, 3, contract.height, contract.width) * 2 - 1
        cat = torch.zeros(batch, dtype=torch.long)
        runner.run(x, x, cat)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            runner.run(x, x, cat)
            times.append(time.perf_counter() - start)
        results[c] = LevelResult(
            throughput=batch / statistics.mean(times),
            p50_ms=percentile(times, 0.5) * 1000,
            p99_ms=percentile(times, 0.99) * 1000,
            batch=batch,
        )
        r = results[c]
        print(f"  raw      c={c:<3d} batch {batch:<3d} {r.throughput:7.2f} img/s  "
              f"p50 {r.p50_ms:8.1f} ms/batch", flush=True)  # fmt: skip
    return results


def table(
    levels: list[int],
    ours: dict[int, LevelResult],
    naive: dict[int, LevelResult],
    raw: dict[int, LevelResult],
) -> str:
    head = (
        "| concurrency | renderer req/s | renderer p50 / p99 ms | naive req/s | naive p50 / p99 ms "
        "| raw forward img/s (batch) | renderer / naive | renderer / raw |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    for c in levels:
        o, n, r = ours[c], naive[c], raw[c]
        rows.append(
            f"| {c} | {o.throughput:.2f} | {o.p50_ms:.0f} / {o.p99_ms:.0f} | {n.throughput:.2f} "
            f"| {n.p50_ms:.0f} / {n.p99_ms:.0f} | {r.throughput:.2f} ({r.batch}) "
            f"| {o.throughput / n.throughput:.2f}x | {o.throughput / r.throughput:.0%} |"
        )
    return head + "\n".join(rows)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()}-core CPU ({cpu}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, no GPU"
        if not torch.cuda.is_available()
        else f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--requests-per-level", type=int, default=32)
    parser.add_argument("--max-seconds-per-level", type=float, default=120)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--raw-reps", type=int, default=5)
    parser.add_argument("--serve-naive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.serve_naive:
        serve_naive(args.serve_naive, args.port)
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    contract = ModelContract(height=args.height, width=args.width)
    torch.manual_seed(0)
    model = TryOnNet(TryOnConfig()).eval()
    workdir = Path(tempfile.mkdtemp(prefix="tryon-bench-"))
    model_dir = write_model_dir(model, workdir / "model", contract=contract)
    body = multipart_body(contract)
    env = {**os.environ, "TRYON_MODEL_PATH": str(model_dir), "TRYON_CACHE_DIR": str(workdir)}
    print(f"machine: {machine()}\nmodel: TryOnNet base_width 16 at {args.height}x{args.width}")

    port = free_port()
    renderer_env = env | {
        "TRYON_PORT": str(port),
        "TRYON_MAX_BATCH_SIZE": str(args.max_batch_size),
        "TRYON_MAX_WAIT_MS": str(args.max_wait_ms),
        "TRYON_MAX_QUEUE": "1024",
        "TRYON_REQUEST_TIMEOUT_S": "600",
    }
    ours = bench_server("renderer", [sys.executable, "-m", "tryon_renderer", "--log-level",
                        "warning"], renderer_env, port, levels, args, body, workdir)  # fmt: skip
    port = free_port()
    naive_argv = [sys.executable, __file__, "--serve-naive", str(model_dir), "--port", str(port)]
    naive = bench_server("naive", naive_argv, env, port, levels, args, body, workdir)
    raw = bench_raw(model, contract, levels, args.max_batch_size, args.raw_reps)
    print()
    print(table(levels, ours, naive, raw))


if __name__ == "__main__":
    main()
