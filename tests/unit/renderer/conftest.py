"""Fixtures for renderer unit tests: tiny real models on disk and in-process apps."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from tryon_renderer.app import create_app
from tryon_renderer.contract import ModelContract
from tryon_renderer.network import TryOnConfig, TryOnNet
from tryon_renderer.packaging import write_model_dir
from tryon_renderer.settings import Settings

SMALL = ModelContract(height=64, width=48)


def tiny_net(seed: int = 0) -> TryOnNet:
    torch.manual_seed(seed)
    return TryOnNet(TryOnConfig(base_width=4, levels=3))


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (60, 80), colour=(180, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"app not ready: {client.get('/readyz').json()}")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tiny_net(), tmp_path_factory.mktemp("model") / "m", contract=SMALL)


@pytest.fixture(scope="session")
def broken_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken")
    return {
        mode: write_model_dir(tiny_net(), root / mode, contract=SMALL, failure_mode=mode)
        for mode in ("nan", "blank", "unloadable")
    }


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Factory: an in-process app (lifespan running) serving a model dir, already ready."""
    clients: list[TestClient] = []

    def factory(path: Path, **overrides: object) -> TestClient:
        settings = Settings(model_path=path, cache_dir=tmp_path / "cache", **overrides)
        client = TestClient(create_app(settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], model_dir: Path) -> TestClient:
    return make_client(
        model_dir,
        max_body_bytes=2_000_000,
        max_image_bytes=1_000_000,
        max_image_side=2000,
        max_image_pixels=1_000_000,
    )
