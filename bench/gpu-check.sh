#!/usr/bin/env bash
# GPU check of the renderer's CUDA path, under 5 minutes on one GPU:
#   1. raw forward: the BatchRunner (pinned host memory, non_blocking copies, channels_last,
#      bf16 autocast, fp16 where bf16 is unsupported) at the shapes the renderer sweeps on a GPU
#      (batch 1, 2, 4, ..., 64, one batch in flight; tryon_renderer.shape): img/s, p99;
#   2. served: `python -m tryon_renderer` on the GPU choosing its own shape at warm-up (printed,
#      with the time it took) and closed-loop clients at concurrency 1..64: req/s, p50/p99, next
#      to raw at the batch size that concurrency gives.
# Usage: bench/gpu-check.sh [--height 256 --width 192]   (needs .venv and a CUDA torch)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=renderer${PYTHONPATH:+:$PYTHONPATH}
timeout 290 "$PY" - "$@" <<'PYEOF'
import argparse, asyncio, os, sys, tempfile
from pathlib import Path

import torch

import bench.renderer_bench as rb  # the script comes from stdin: sys.path[0] is the repo root
from tryon_renderer import shape
from tryon_renderer.batching import BatchRunner
from tryon_renderer.contract import ModelContract
from tryon_renderer.packaging import write_model_dir
from tryon_renderer.placement import PlacementTryOnNet
from tryon_renderer.precision import reduced_dtype
from tryon_renderer.fastpath import photo_batch

ap = argparse.ArgumentParser()
ap.add_argument("--height", type=int, default=256)
ap.add_argument("--width", type=int, default=192)
ap.add_argument("--reps", type=int, default=30)
args = ap.parse_args()
if not torch.cuda.is_available():
    sys.exit("gpu-check: no CUDA device visible to torch")
dev = torch.device("cuda")
print(f"GPU {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
      f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no (fp16)'}", flush=True)
torch.manual_seed(0)
model = PlacementTryOnNet().eval()
runner = BatchRunner(model, dev)
print(f"precision: {runner.set_reduced(reduced_dtype('auto', dev))} (the renderer's auto choice)")
h, w = args.height, args.width
x = torch.rand(64, 3, h, w) * 2 - 1
c = torch.zeros(64, dtype=torch.long)
pins = shape.ShapePins(parallel_batches=1)
limits = shape.SweepLimits(budget_ms=float("inf"), max_wait_ms=0, deadline=float("inf"),
                           min_reps=args.reps, min_seconds=0.5)
measured = shape.sweep(lambda b: runner.run(x[:b], x[:b], c[:b]), torch.set_num_threads,
                       shape.candidate_layouts("cuda", 1, pins, torch.get_num_threads()),
                       shape.candidate_batches("cuda", pins), limits)
raw = {}
print("| batch | raw img/s | p99 ms/batch |\n|---:|---:|---:|")
for m in measured:
    raw[m.batch] = m.images_per_s
    print(f"| {m.batch} | {m.images_per_s:.0f} | {m.p99_ms:.2f} |", flush=True)
best = shape.choose(measured, 500, 2)
print(f"shape the renderer's rule picks at a 500 ms budget: batch {best.batch} "
      f"({best.images_per_s:.0f} img/s, p99 {best.p99_ms:.1f} ms)")
person, garment, category = photo_batch(8, h, w)
low = runner.run(person, garment, category)
label = runner.precision
runner.set_reduced(None)
ref = runner.run(person, garment, category)
runner.set_reduced(reduced_dtype("auto", dev))
print(f"{label} vs fp32 max abs diff on photos: {(low - ref).abs().max().item():.4f} "
      f"([-1, 1] scale; one 8-bit level is {2 / 255:.4f})")

work = Path(tempfile.mkdtemp(prefix="tryon-gpu-"))
contract = ModelContract(height=h, width=w)
model_dir = write_model_dir(model.cpu(), work / "model", contract=contract)
port = rb.free_port()
env = {**os.environ, "TRYON_MODEL_PATH": str(model_dir), "TRYON_CACHE_DIR": str(work),
       "TRYON_PORT": str(port), "TRYON_DEVICE": "cuda",
       "TRYON_MAX_WAIT_MS": "2", "TRYON_MAX_QUEUE": "4096", "TRYON_REQUEST_TIMEOUT_S": "120"}
proc = rb.start_server([sys.executable, "-m", "tryon_renderer", "--log-level", "warning"],
                       env, port, work / "renderer.log")
body = rb.multipart_body(contract)
url = f"http://127.0.0.1:{port}/v1/tryon"
served = rb.httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=10).json()["shape"]
print(f"renderer's serving shape (measured at warm-up): {served}")
try:
    asyncio.run(rb.drive(url, *body, 4, 16, 60))
    print("\n| concurrency | served req/s | p50 ms | p99 ms | raw img/s at that batch | served/raw |")
    print("|---:|---:|---:|---:|---:|---:|")
    for conc in (1, 4, 16, 64):
        r = asyncio.run(rb.drive(url, *body, conc, max(64, 8 * conc), 40))
        b = max(size for size in raw if size <= conc)
        print(f"| {conc} | {r.throughput:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {raw[b]:.0f} "
              f"| {r.throughput / raw[b]:.0%} |", flush=True)
finally:
    rb.stop_server(proc)
PYEOF
