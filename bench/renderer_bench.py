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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__" and not __package__:
    from _as_module import run_as_module  # run by its path: bench/ is on sys.path, not the root

    run_as_module("bench.renderer_bench")

import httpx
import torch
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import Response
from PIL import Image
from tryon_renderer import fastpath, shape
from tryon_renderer.contract import ModelContract
from tryon_renderer.golden import synthetic_garment, synthetic_person
from tryon_renderer.network import TryOnConfig, TryOnNet
from tryon_renderer.packaging import write_model_dir
from tryon_renderer.placement import PlacementConfig, PlacementTryOnNet
from tryon_renderer.precision import reduced_dtype

from bench.common import percentile


@dataclass
class LevelResult:
    """Throughput (requests or images per second) and latency percentiles in ms."""

    throughput: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    batch: int = 1
    cpu_ms: float = float("nan")  # CPU time the server (or raw loop) spent per image
    completed: int = 0
    parallel: int = 1  # raw: batches in flight at once


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc, in seconds.

    Why: the benchmark machine is shared, so wall-clock throughput partly measures how much CPU
    the scheduler hands each server; CPU time per image measures the server's own efficiency.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    if os.environ.get("NAIVE_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["NAIVE_TORCH_THREADS"]))
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
        p50_ms=percentile(latencies, 0.5, method="nearest") * 1000 if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99, method="nearest") * 1000 if latencies else float("nan"),
        errors=errors,
        completed=len(latencies),
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


def run_level(
    name: str, proc: subprocess.Popen[bytes], port: int, c: int, args: argparse.Namespace,
    body: tuple[bytes, str],
) -> LevelResult:  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1/tryon"
    total = max(args.requests_per_level, 2 * c)
    cpu_before = process_cpu_s(proc.pid)
    result = asyncio.run(drive(url, *body, c, total, args.max_seconds_per_level))
    result.cpu_ms = (process_cpu_s(proc.pid) - cpu_before) * 1000 / max(1, result.completed)
    print(f"  {name:8s} c={c:<3d} {result.throughput:7.2f} req/s  p50 {result.p50_ms:8.1f} ms  "
          f"p99 {result.p99_ms:8.1f} ms  cpu {result.cpu_ms:7.1f} ms/req  errors {result.errors}  "
          f"load avg {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    return result


def raw_shapes(
    runner: object, contract: ModelContract, args: argparse.Namespace
) -> list[shape.Measurement]:
    """The raw batched forward (no HTTP) at every shape the renderer considers, images/s.

    Uses the renderer's own sweep (``tryon_renderer.shape``) with no latency budget and longer
    timing per shape; the same pins as the renderer.
    """
    from tryon_renderer.batching import BatchRunner

    assert isinstance(runner, BatchRunner)
    x = torch.rand(16, 3, contract.height, contract.width) * 2 - 1
    cat = torch.zeros(16, dtype=torch.long)
    pins = shape_pins(args)
    layouts = shape.candidate_layouts("cpu", shape.available_cores(), pins, torch.get_num_threads())
    batches = shape.candidate_batches("cpu", pins) + ([] if pins.max_batch_size else [16])
    limits = shape.SweepLimits(
        budget_ms=float("inf"), max_wait_ms=0, deadline=float("inf"), min_reps=args.raw_reps,
        min_seconds=1.0,
    )  # fmt: skip
    measured = shape.sweep(
        lambda b: runner.run(x[:b], x[:b], cat[:b]), torch.set_num_threads, layouts, batches, limits
    )
    for m in measured:
        print(f"  raw      {m.layout.parallel_batches} x batch {m.batch:<3d} "
              f"({m.layout.torch_threads} thread(s) each) {m.images_per_s:7.2f} img/s  "
              f"p99 {m.p99_ms:8.1f} ms/batch  load avg {os.getloadavg()[0]:.1f}",
              flush=True)  # fmt: skip
    return measured


def best_raw(measured: list[shape.Measurement], concurrency: int) -> LevelResult:
    """The fastest raw shape that this many clients can fill (batches x size <= concurrency)."""
    fillable = [
        m for m in measured if m.layout.parallel_batches * m.batch <= max(1, concurrency)
    ] or [min(measured, key=lambda m: m.layout.parallel_batches * m.batch)]
    best = max(fillable, key=lambda m: m.images_per_s)
    return LevelResult(
        throughput=best.images_per_s,
        p50_ms=float("nan"),
        p99_ms=best.p99_ms,
        batch=best.batch,
        parallel=best.layout.parallel_batches,
    )


def shape_pins(args: argparse.Namespace) -> shape.ShapePins:
    return shape.ShapePins(
        max_batch_size=args.max_batch_size,
        parallel_batches=args.parallel_batches,
        torch_threads=args.torch_threads,
    )


def table(levels: list[int], systems: dict[str, dict[int, LevelResult]]) -> str:
    """Two markdown tables: per-system numbers, then the renderer's ratios."""
    lines = [
        "| concurrency | system | throughput (req/s; raw: img/s) | p50 ms "
        "| p99 ms (raw: per batch) | CPU ms per image |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for c in levels:
        for name, results in systems.items():
            r = results[c]
            label = f"{name} ({r.parallel} x batch {r.batch})" if name == "raw" else name
            lines.append(
                f"| {c} | {label} | {r.throughput:.2f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} "
                f"| {_ms(r.cpu_ms)} |"
            )
    lines += [
        "",
        "| concurrency | renderer / naive throughput | renderer / naive-1t throughput "
        "| renderer / raw throughput | naive CPU per image / renderer's "
        "| naive-1t CPU per image / renderer's |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    ours, naive, naive1, raw = (systems[k] for k in ("renderer", "naive", "naive-1t", "raw"))
    for c in levels:
        o = ours[c]
        lines.append(
            f"| {c} | {o.throughput / naive[c].throughput:.2f}x "
            f"| {o.throughput / naive1[c].throughput:.2f}x "
            f"| {o.throughput / raw[c].throughput:.0%} "
            f"| {naive[c].cpu_ms / o.cpu_ms:.2f}x | {naive1[c].cpu_ms / o.cpu_ms:.2f}x |"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VECTOR_FLAGS = (
    "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16"
)  # fmt: skip


def _ms(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"  # NaN: not measured (raw has no p50/CPU)


def machine() -> str:
    flags = fastpath.cpu_flags()
    vector = " ".join(f for f in VECTOR_FLAGS if f in flags) or "none of " + " ".join(VECTOR_FLAGS)
    cpu = f"{os.cpu_count()}-core CPU {cpu_model()} (flags: {vector})"
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}, {cpu}, torch {torch.__version__}"
    return f"{cpu}, torch {torch.__version__}, Python {platform.python_version()}, no GPU"


def raw_forward_tables(model: torch.nn.Module, args: argparse.Namespace) -> None:
    """GFLOP per image, then eager vs faster paths for the served network and the previous one."""
    peak, how = fastpath.peak_gflops_per_core()
    batches = [int(b) for b in args.raw_batches.split(",")]
    print(f"machine: {machine()}")
    print("raw forward table: 1 torch thread")
    print(f"1-core fp32 peak: {peak:.1f} GFLOP/s = {how}")
    previous = TryOnNet(TryOnConfig()).eval()
    for label, net in (("PlacementTryOnNet (served)", model), ("TryOnNet (previous)", previous)):
        gflop = fastpath.gflop_per_image(net, args.height, args.width)
        print(f"\n{label} at {args.height}x{args.width}: {gflop:.3f} GFLOP per image")
        rows = fastpath.measure(net, args.height, args.width, batches)
        print(fastpath.table(rows, gflop, peak), flush=True)
    print()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--requests-per-level", type=int, default=32)
    parser.add_argument("--max-seconds-per-level", type=float, default=120)
    parser.add_argument(
        "--max-batch-size", type=int, help="pin the renderer's batch size (default: it measures)"
    )
    parser.add_argument("--max-wait-ms", type=float, default=5)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--raw-reps", type=int, default=5)
    parser.add_argument(
        "--torch-threads", type=int, help="pin the renderer's torch threads (default: it measures)"
    )
    parser.add_argument(
        "--parallel-batches",
        type=int,
        help="pin the renderer's batches in flight (default: it measures)",
    )
    parser.add_argument(
        "--raw-only", action="store_true", help="only the raw forward table (eager vs fast paths)"
    )
    parser.add_argument("--raw-batches", default="1,8", help="batch sizes of the raw table")
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
    model = PlacementTryOnNet(PlacementConfig()).eval()
    torch.set_num_threads(1)  # the raw forward table is per core
    raw_forward_tables(model, args)
    if args.raw_only:
        return
    workdir = Path(tempfile.mkdtemp(prefix="tryon-bench-"))
    model_dir = write_model_dir(model, workdir / "model", contract=contract)
    body = multipart_body(contract)
    env = {**os.environ, "TRYON_MODEL_PATH": str(model_dir), "TRYON_CACHE_DIR": str(workdir)}
    print(f"served model: PlacementTryOnNet base_width 16 at {args.height}x{args.width}")

    from tryon_renderer.batching import BatchRunner

    ours_port, naive_port, naive1_port = free_port(), free_port(), free_port()
    pins = {
        "TRYON_MAX_BATCH_SIZE": args.max_batch_size,
        "TRYON_TORCH_THREADS": args.torch_threads,
        "TRYON_PARALLEL_BATCHES": args.parallel_batches,
    }
    renderer_env = env | {
        "TRYON_PORT": str(ours_port),
        "TRYON_MAX_WAIT_MS": str(args.max_wait_ms),
        "TRYON_MAX_QUEUE": "1024",
        "TRYON_REQUEST_TIMEOUT_S": "600",
        **{name: str(value) for name, value in pins.items() if value is not None},
    }
    renderer_argv = [sys.executable, "-m", "tryon_renderer", "--log-level", "warning"]
    naive_argv = [sys.executable, __file__, "--serve-naive", str(model_dir), "--port",
                  str(naive_port)]  # fmt: skip
    # Both servers stay up (idle ones cost nothing) and each level runs renderer, naive and
    # naive-1t back to back, so drifting load from other tenants hits them alike.
    naive1_argv = [*naive_argv[:-1], str(naive1_port)]
    naive1_env = env | {"NAIVE_TORCH_THREADS": "1"}
    procs = [
        start_server(renderer_argv, renderer_env, ours_port, workdir / "renderer.log"),
        start_server(naive_argv, env, naive_port, workdir / "naive.log"),
        start_server(naive1_argv, naive1_env, naive1_port, workdir / "naive1.log"),
    ]
    served_shape = httpx.get(f"http://127.0.0.1:{ours_port}/v1/model", timeout=10).json()["shape"]
    print(f"renderer's serving shape: {served_shape}")
    runner = BatchRunner(model, torch.device("cpu"))
    # The same precision the renderer picks with TRYON_PRECISION=auto (its log says which).
    print(f"raw precision: {runner.set_reduced(reduced_dtype('auto', runner.device))}")
    ours: dict[int, LevelResult] = {}
    naive: dict[int, LevelResult] = {}
    naive1: dict[int, LevelResult] = {}
    try:
        measured = raw_shapes(runner, contract, args)
        for port in (ours_port, naive_port, naive1_port):  # warm-up
            asyncio.run(drive(f"http://127.0.0.1:{port}/v1/tryon", *body, 2, 4, 60))
        for c in levels:
            ours[c] = run_level("renderer", procs[0], ours_port, c, args, body)
            naive[c] = run_level("naive", procs[1], naive_port, c, args, body)
            naive1[c] = run_level("naive-1t", procs[2], naive1_port, c, args, body)
    finally:
        for proc in procs:
            stop_server(proc)
    raw = {c: best_raw(measured, c) for c in levels}
    print()
    print(table(levels, {"renderer": ours, "naive": naive, "naive-1t": naive1, "raw": raw}))


if __name__ == "__main__":
    main()
