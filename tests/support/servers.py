"""Session-scoped fixtures that run a real S3 server (seaweedfs) and a real MLflow server.

The servers themselves live in ``hack/localcluster/devservers.py`` so the demo and the benchmarks
start exactly the same ones; here they only get a temp dir and a finalizer.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster import devservers
from hack.localcluster.devservers import (
    MlflowServer,
    S3Server,
    free_port,
    start_mlflow_server,
    start_s3_server,
)

__all__ = ["MlflowServer", "S3Server", "devservers", "free_port", "mlflow_server", "s3_server"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real seaweedfs S3 server for the whole session."""
    workdir = Path(tempfile.mkdtemp(prefix="tryon-s3-"))
    server = start_s3_server(workdir)
    try:
        yield server
    finally:
        server.process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(s3_server: S3Server) -> Iterator[MlflowServer]:
    """A real MLflow tracking server for the whole session; artifacts go to `s3_server`."""
    workdir = Path(tempfile.mkdtemp(prefix="tryon-mlflow-"))
    server = start_mlflow_server(workdir, s3_server)
    try:
        yield server
    finally:
        server.process.stop()
        shutil.rmtree(workdir, ignore_errors=True)
