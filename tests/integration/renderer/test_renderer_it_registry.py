"""In-process renderer against real MLflow + real S3: loading, cache, smoke, S3 requests."""

from __future__ import annotations

import io
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tryon_renderer.app import create_app
from tryon_renderer.settings import Settings

from .conftest import INPUT_BUCKET, SMALL, RegisteredModels

pytestmark = pytest.mark.integration


def _png(colour: tuple[int, int, int] = (30, 90, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (60, 80), colour).save(buf, "PNG")
    return buf.getvalue()


def _ready_client(settings: Settings, timeout_s: float = 90.0) -> TestClient:
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    client.__enter__()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return client
        time.sleep(0.1)
    detail = client.get("/readyz").text
    client.__exit__(None, None, None)
    raise AssertionError(f"renderer not ready: {detail}")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def served(registered: RegisteredModels, cache_dir: Path, renderer_env, s3_server):
    """The healthy version served with S3 inputs/outputs enabled."""
    settings = Settings(
        model_uri=f"models:/{registered.name}/{registered.good_version}",
        cache_dir=cache_dir,
        allowed_bucket=INPUT_BUCKET,
    )
    client = _ready_client(settings)
    yield client
    client.__exit__(None, None, None)


def test_loads_registered_version_and_reports_it(served: TestClient, registered) -> None:
    info = served.get("/v1/model").json()
    assert info["name"] == registered.name and info["version"] == registered.good_version
    assert info["source"].startswith("s3://")
    assert served.get("/healthz").headers["x-model-version"] == registered.good_version


def test_smoke_passes_for_registered_good_version(served: TestClient) -> None:
    result = served.post("/v1/smoke").json()
    assert result["passed"] is True, result


def test_alias_uri_resolves_to_version(registered, tmp_path: Path, renderer_env) -> None:
    client = _ready_client(
        Settings(model_uri=f"models:/{registered.name}@production", cache_dir=tmp_path)
    )
    try:
        assert client.get("/v1/model").json()["version"] == registered.good_version
    finally:
        client.__exit__(None, None, None)


def test_broken_registered_version_fails_smoke(registered, tmp_path: Path, renderer_env) -> None:
    client = _ready_client(
        Settings(
            model_uri=f"models:/{registered.name}/{registered.broken_version}", cache_dir=tmp_path
        )
    )
    try:
        result = client.post("/v1/smoke").json()
        assert result["passed"] is False
        assert any(c["name"] == "finite" and not c["passed"] for c in result["checks"])
    finally:
        client.__exit__(None, None, None)


def _wait_status(client: TestClient, path: str, ok, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok(client.get(path)):
        assert time.monotonic() < deadline, client.get(path).text
        time.sleep(0.1)


def test_mlflow_down_cached_version_serves_uncached_waits(
    served: TestClient, registered, cache_dir: Path, tmp_path: Path, mlflow_server
) -> None:
    """With the registry down, a cached version still loads (checksums verified), while an
    uncached one stays unready with the reason and becomes ready once MLflow is back."""
    uri = f"models:/{registered.name}/{registered.good_version}"
    mlflow_server.stop()
    waiting = TestClient(
        create_app(Settings(model_uri=uri, cache_dir=tmp_path, load_retry_max_s=1))
    )
    waiting.__enter__()
    try:
        cached = _ready_client(Settings(model_uri=uri, cache_dir=cache_dir))
        try:
            assert cached.post("/v1/smoke").json()["passed"] is True
        finally:
            cached.__exit__(None, None, None)
        _wait_status(waiting, "/readyz", lambda r: "cannot resolve" in r.text, 30)
        assert waiting.get("/readyz").status_code == 503
        mlflow_server.start()
        _wait_status(waiting, "/readyz", lambda r: r.status_code == 200, 90)
        assert waiting.get("/v1/model").json()["version"] == registered.good_version
    finally:
        waiting.__exit__(None, None, None)
        if not mlflow_server.is_up():
            mlflow_server.start()


def _put_inputs(s3_server) -> tuple[str, str]:
    s3 = s3_server.client()
    s3.put_object(Bucket=INPUT_BUCKET, Key="users/1/person.png", Body=_png())
    s3.put_object(Bucket=INPUT_BUCKET, Key="garments/shirt.png", Body=_png((200, 20, 20)))
    return "users/1/person.png", "garments/shirt.png"


def test_json_request_stores_result_and_presigns(served: TestClient, s3_server) -> None:
    person, garment = _put_inputs(s3_server)
    body = {
        "person": {"bucket": INPUT_BUCKET, "key": person},
        "garment": {"bucket": INPUT_BUCKET, "key": garment},
        "category": "upper",
    }
    resp = served.post("/v1/tryon", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["bucket"] == INPUT_BUCKET and out["key"].startswith("tryon-results/")
    with urllib.request.urlopen(out["url"], timeout=10) as fetched:  # SigV4 presigned GET
        assert Image.open(io.BytesIO(fetched.read())).size == (48, 64)


def test_json_request_can_return_image(served: TestClient, s3_server) -> None:
    person, garment = _put_inputs(s3_server)
    ref = {"bucket": INPUT_BUCKET}
    body = {"person": {**ref, "key": person}, "garment": {**ref, "key": garment},
            "response": "image"}  # fmt: skip
    resp = served.post("/v1/tryon", json=body)
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"


def _json_refs(person_key: str, bucket: str = INPUT_BUCKET) -> dict:
    return {
        "person": {"bucket": bucket, "key": person_key},
        "garment": {"bucket": INPUT_BUCKET, "key": "garments/shirt.png"},
    }


def _assert_error(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert resp.headers["x-model-version"]


def test_bad_input_bucket_outside_allowed(served: TestClient, s3_server) -> None:
    s3_server.create_bucket("other-bucket")
    s3_server.client().put_object(Bucket="other-bucket", Key="p.png", Body=_png())
    _assert_error(served.post("/v1/tryon", json=_json_refs("p.png", "other-bucket")), 403,
                  "s3_bucket_not_allowed")  # fmt: skip


def test_bad_input_key_with_dotdot(served: TestClient) -> None:
    resp = served.post("/v1/tryon", json=_json_refs("users/../../etc/passwd"))
    _assert_error(resp, 400, "invalid_s3_key")


def test_bad_input_nonexistent_object(served: TestClient, s3_server) -> None:
    _put_inputs(s3_server)
    _assert_error(served.post("/v1/tryon", json=_json_refs("users/nobody.png")), 404,
                  "s3_object_not_found")  # fmt: skip


def test_bad_input_s3_object_not_an_image(served: TestClient, s3_server) -> None:
    _put_inputs(s3_server)
    s3_server.client().put_object(Bucket=INPUT_BUCKET, Key="users/x.txt", Body=b"hello")
    _assert_error(served.post("/v1/tryon", json=_json_refs("users/x.txt")), 415,
                  "unsupported_image_type")  # fmt: skip


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bad_input_s3_down_is_503_and_server_keeps_serving(tmp_path: Path, renderer_env) -> None:
    from tryon_renderer.network import TryOnConfig, TryOnNet
    from tryon_renderer.packaging import write_model_dir

    model = write_model_dir(TryOnNet(TryOnConfig(base_width=4)), tmp_path / "m", contract=SMALL)
    client = _ready_client(
        Settings(
            model_path=model,
            cache_dir=tmp_path,
            allowed_bucket=INPUT_BUCKET,
            s3_endpoint_url=f"http://127.0.0.1:{_dead_port()}",
            s3_timeout_s=1,
        )
    )
    try:
        resp = client.post("/v1/tryon", json=_json_refs("users/1/person.png"))
        assert resp.status_code == 503 and resp.headers["retry-after"]
        assert resp.json()["error"]["code"] == "s3_unavailable"
        files = {
            "person": ("p.png", _png(), "image/png"),
            "garment": ("g.png", _png(), "image/png"),
        }
        assert client.post("/v1/tryon", files=files).status_code == 200
    finally:
        client.__exit__(None, None, None)
