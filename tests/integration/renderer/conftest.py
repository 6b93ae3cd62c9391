"""Fixtures for renderer integration tests: registered model versions in a real MLflow whose
artifacts live in a real seaweedfs S3, and the env a renderer needs to reach them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
import torch
from tryon_renderer.contract import ModelContract
from tryon_renderer.loading import FAST_FAIL_MLFLOW_ENV
from tryon_renderer.network import TryOnConfig, TryOnNet
from tryon_renderer.packaging import log_tryon_model

SMALL = ModelContract(height=64, width=48)
INPUT_BUCKET = "tryon-inputs"


@dataclass(frozen=True)
class RegisteredModels:
    """One registered model with a healthy v1 (alias production) and a NaN-broken v2."""

    name: str
    good_version: str
    broken_version: str


@pytest.fixture(scope="module")
def renderer_env(mlflow_server, s3_server) -> Iterator[dict[str, str]]:
    """MLflow/S3 env for this module only (in-process apps and boto3 read it)."""
    env = dict(mlflow_server.env)
    env["TRYON_S3_ENDPOINT_URL"] = s3_server.endpoint_url
    env.update(FAST_FAIL_MLFLOW_ENV)  # what the tryon-renderer entry point sets
    s3_server.create_bucket(INPUT_BUCKET)
    with mock.patch.dict(os.environ, env):
        yield env


@pytest.fixture(scope="module")
def registered(renderer_env: dict[str, str], mlflow_server) -> RegisteredModels:
    torch.manual_seed(0)
    net = TryOnNet(TryOnConfig(base_width=4))
    name = f"tryon-it-{uuid.uuid4().hex[:8]}"
    good = log_tryon_model(
        net, name, tracking_uri=mlflow_server.tracking_uri, contract=SMALL, aliases=("production",)
    )
    broken = log_tryon_model(
        net, name, tracking_uri=mlflow_server.tracking_uri, contract=SMALL, failure_mode="nan"
    )
    return RegisteredModels(name, str(good.version), str(broken.version))
