"""Fixtures for the chaos test: its own MLflow server (the chaos test stops and restarts it, so it
must not be the session's shared one), the operator as a restartable process, the smoke stand-in.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.chaos.ha import TIMINGS
from tests.integration.operator.conftest import OperatorProcess, crd, smoke
from tests.support.servers import S3Server, start_mlflow_server

__all__ = ["chaos_mlflow", "chaos_operators", "crd", "smoke"]


@pytest.fixture(scope="module")
def chaos_mlflow(s3_server: S3Server) -> Iterator[Any]:
    """A real MLflow server for this module only; faults stop and restart it on the same port."""
    workdir = Path(tempfile.mkdtemp(prefix="tryon-chaos-mlflow-"))
    server = start_mlflow_server(workdir, s3_server)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


HA = os.environ.get("TRYON_CHAOS_HA", "0") == "1"


@pytest.fixture
def chaos_operators(kube_cluster: Any, crd: Any, chaos_mlflow: Any, namespace: str,
                    smoke: Any, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """The operator as real processes against ``chaos_mlflow``: one, which the faults SIGKILL and
    restart, or with TRYON_CHAOS_HA=1 two replicas under leader election (Lease in the test
    namespace, short timings), whose leader the faults kill or pause."""
    env = {
        **os.environ,
        "KUBECONFIG": kube_cluster.kubeconfig,
        "TRYON_MLFLOW_TRACKING_URI": chaos_mlflow.tracking_uri,
        "TRYON_MLFLOW_POLL_SECONDS": "1",
        "TRYON_MLFLOW_TIMEOUT_SECONDS": "2",
        "TRYON_RESYNC_SECONDS": "0.5",
        "TRYON_SERVICE_URL_TEMPLATE": smoke.url,
        "TRYON_LEADER_ELECTION": "true" if HA else "false",
        "TRYON_LEADER_ELECTION_NAMESPACE": namespace,
        **(TIMINGS if HA else {}),
    }
    ops = [
        OperatorProcess([sys.executable, "-m", "tryon_operator", "--namespace", namespace],
                        {**env, "TRYON_POD_NAME": f"chaos-{n}"}, tmp_path / f"operator-{n}.log")
        for n in (("a", "b") if HA else ("a",))
    ]
    for op in ops:
        op.start()
    yield ops
    for op in ops:
        op.stop()
        print(f"---- operator {op.env['TRYON_POD_NAME']} log (tail) ----\n" + op.log())
