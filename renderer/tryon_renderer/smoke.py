"""The golden-input smoke test behind POST /v1/smoke (the operator's promotion gate).

Why it goes through the real batching worker: the gate should exercise the exact serving path
(pre-processing, queue, device settings, autocast), not a side door.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .batching import BatchingWorker
from .contract import ModelContract
from .golden import GoldenSet
from .images import to_tensor, to_uint8


def _check(name: str, passed: bool, value: float, threshold: float, case: int) -> dict[str, Any]:
    return {
        "name": name,
        "case": case,
        "passed": bool(passed),
        "value": round(float(value), 6),
        "threshold": threshold,
    }


def _case_checks(
    out: torch.Tensor, reference: np.ndarray, golden: GoldenSet, case: int
) -> list[dict[str, Any]]:
    """finite / not_blank / matches_reference for one output."""
    bad = int((~torch.isfinite(out)).sum())
    checks = [_check("finite", bad == 0, bad, 0, case)]
    if bad:
        checks.append(_check("not_blank", False, 0.0, golden.index.min_std, case))
        checks.append(_check("matches_reference", False, 1.0, golden.index.tolerance, case))
        return checks
    pixels = to_uint8(out)
    std = float(pixels.astype(np.float32).std())
    checks.append(_check("not_blank", std > golden.index.min_std, std, golden.index.min_std, case))
    if pixels.shape != reference.shape:
        diff = 1.0
    else:
        diff = float(np.abs(pixels.astype(np.float32) - reference.astype(np.float32)).mean() / 255)
    checks.append(
        _check(
            "matches_reference", diff <= golden.index.tolerance, diff, golden.index.tolerance, case
        )
    )
    return checks


async def run_smoke(
    worker: BatchingWorker,
    contract: ModelContract,
    golden: GoldenSet | None,
    timeout_s: float,
    budget_override_ms: float | None,
) -> dict[str, Any]:
    """Run every golden case and report per-check results plus an overall `passed`."""
    if golden is None:
        return {
            "passed": False,
            "checks": [{"name": "golden_present", "passed": False, "case": None}],
            "latency_ms": [],
        }
    budget_ms = budget_override_ms or golden.index.latency_budget_ms
    checks: list[dict[str, Any]] = []
    latencies: list[float] = []
    for i, case in enumerate(golden.index.cases):
        person = to_tensor(golden.persons[i], contract.height, contract.width)
        garment = to_tensor(golden.garments[i], contract.height, contract.width)
        start = time.perf_counter()
        out = await worker.submit(
            person, garment, contract.category_index(case.category), timeout_s
        )
        latency_ms = (time.perf_counter() - start) * 1000
        latencies.append(round(latency_ms, 3))
        checks.extend(_case_checks(out, golden.references[i], golden, i))
        checks.append(_check("latency_ms", latency_ms <= budget_ms, latency_ms, budget_ms, i))
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "latency_ms": latencies,
    }
