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

from tests.integration.operator.conftest import OperatorProcess, crd, smoke
from tests.support.servers import S3Server, start_mlflow_server

__all__ = ["chaos_mlflow", "chaos_operator", "crd", "smoke"]


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


@pytest.fixture
def chaos_operator(kube_cluster: Any, crd: Any, chaos_mlflow: Any, namespace: str,
                   smoke: Any, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator as a real process against ``chaos_mlflow``; faults SIGKILL and restart it."""
    env = {
        **os.environ,
        "KUBECONFIG": kube_cluster.kubeconfig,
        "TRYON_MLFLOW_TRACKING_URI": chaos_mlflow.tracking_uri,
        "TRYON_MLFLOW_POLL_SECONDS": "1",
        "TRYON_MLFLOW_TIMEOUT_SECONDS": "2",
        "TRYON_RESYNC_SECONDS": "0.5",
        "TRYON_SERVICE_URL_TEMPLATE": smoke.url,
        # One operator, SIGKILLed and restarted by the faults: no Lease to wait out each time.
        "TRYON_LEADER_ELECTION": "false",
    }
    op = OperatorProcess([sys.executable, "-m", "tryon_operator", "--namespace", namespace],
                         env, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    print("---- operator log (tail) ----\n" + op.log())
