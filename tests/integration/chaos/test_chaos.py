"""Issue 5 (chaos): many rollouts of one TryOnModel while the operator is killed, children and
pods are deleted, pods fail, MLflow goes down and up and other writers race the operator.

TRYON_CHAOS_ITERATIONS sets the size (`make chaos`: 50, nightly), TRYON_CHAOS_SEED the seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.chaos.engine import ChaosRun, World

ITERATIONS = int(os.environ.get("TRYON_CHAOS_ITERATIONS", "5"))
SEED = int(os.environ.get("TRYON_CHAOS_SEED", "20250505"))

TIMEOUT = int(os.environ.get("TRYON_CHAOS_TIMEOUT", 240 + 45 * ITERATIONS))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]


def test_chaos_rollouts_keep_invariants(chaos_operators, chaos_mlflow, smoke, kube_cluster,
                                        namespace, capsys, tmp_path):
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=chaos_mlflow.tracking_uri,
                                 registry_uri=chaos_mlflow.tracking_uri)
    mlflow_client.create_registered_model(namespace)
    world = World(kube_cluster.kubeconfig, namespace, "chaos", chaos_operators[0], chaos_mlflow,
                  mlflow_client, smoke, registered_model=namespace,
                  standby=chaos_operators[1] if len(chaos_operators) > 1 else None)

    def say(line: str) -> None:
        with capsys.disabled():
            print(line, flush=True)

    say(f"\n[chaos] seed={SEED} iterations={ITERATIONS} replicas={len(chaos_operators)} "
        f"(replay: TRYON_CHAOS_SEED={SEED} TRYON_CHAOS_ITERATIONS={ITERATIONS})")
    run = ChaosRun(world, SEED, log=say)
    run.start()
    for _ in range(ITERATIONS):
        run.run_iteration()
    table = run.stats.table()
    say(table)
    report = os.environ.get("TRYON_CHAOS_REPORT")
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(table + "\n")

    assert run.stats.iterations == ITERATIONS
    assert not run.stats.violations, table
