"""HTTP API behaviour in-process: happy path, headers, metrics, smoke gate and bad input.

Each bad-input case is its own test and checks status, JSON error shape, X-Model-Version, and
that the server still serves afterwards.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from .conftest import image_bytes

pytestmark = pytest.mark.unit


def _files(person: bytes, garment: bytes | None = None, ctype: str = "image/png") -> dict:
    garment = image_bytes() if garment is None else garment
    return {"person": ("p.png", person, ctype), "garment": ("g.png", garment, "image/png")}


def _assert_error(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers["x-model-version"] == "local"
    err = resp.json()["error"]
    assert err["status"] == status and err["message"]
    if code is not None:
        assert err["code"] == code
    return err


def _still_serves(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files=_files(image_bytes()))
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"


def test_tryon_returns_png_at_contract_resolution(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files=_files(image_bytes("JPEG")), data={"category": "dress"})
    assert resp.status_code == 200
    assert resp.headers["x-model-version"] == "local"
    assert Image.open(io.BytesIO(resp.content)).size == (48, 64)


def test_health_ready_model_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    info = client.get("/v1/model").json()
    assert info["contract"]["height"] == 64 and info["format"] == "tryon-native"
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/tryon"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert client.get("/openapi.json").headers["x-model-version"] == "local"


def test_metrics_exposes_latency_batch_queue_and_version(client: TestClient) -> None:
    client.post("/v1/tryon", files=_files(image_bytes()))
    client.post("/v1/tryon", files=_files(b"junk"))
    text = client.get("/metrics").text
    assert 'tryon_request_duration_seconds_count{outcome="ok"} 1.0' in text
    assert 'tryon_request_duration_seconds_count{outcome="client_error"} 1.0' in text
    assert "tryon_batch_size_count" in text and "tryon_inference_duration_seconds" in text
    assert "tryon_queue_depth 0.0" in text and "tryon_in_flight_requests 0.0" in text
    info = next(line for line in text.splitlines() if line.startswith("tryon_model_info{"))
    assert 'name=""' in info and 'precision="fp32"' in info and 'version="local"' in info


def test_the_serving_shape_is_measured_at_warm_up_and_reported(client: TestClient) -> None:
    shape = client.get("/v1/model").json()["shape"]
    assert shape["source"] == "measured" and shape["shapes_measured"] >= 2
    assert shape["images_per_s"] > 0 and shape["max_batch_size"] >= 1
    info = next(
        line for line in client.get("/metrics").text.splitlines()
        if line.startswith("tryon_model_info{")
    )  # fmt: skip
    assert f'max_batch_size="{shape["max_batch_size"]}"' in info
    assert f'parallel_batches="{shape["parallel_batches"]}"' in info
    assert 'images_per_second="' in info and 'shape_source="measured"' in info


def test_a_fully_pinned_shape_serves_as_set(
    make_client: Callable[..., TestClient], model_dir: Path
) -> None:
    client = make_client(model_dir, max_batch_size=3, parallel_batches=1, torch_threads=1)
    shape = client.get("/v1/model").json()["shape"]
    assert (shape["max_batch_size"], shape["parallel_batches"], shape["torch_threads"]) == (3, 1, 1)
    assert shape["source"] == "pinned" and shape["shapes_measured"] == 1


def test_smoke_passes_for_a_healthy_model(client: TestClient) -> None:
    result = client.post("/v1/smoke").json()
    assert result["passed"] is True
    names = {c["name"] for c in result["checks"]}
    assert names == {"finite", "not_blank", "matches_reference", "latency_ms"}
    assert len(result["latency_ms"]) == 2


@pytest.mark.parametrize("mode", ["nan", "blank"])
def test_smoke_fails_for_a_broken_model(
    make_client: Callable[..., TestClient], broken_model_dirs: dict[str, Path], mode: str
) -> None:
    client = make_client(broken_model_dirs[mode])
    result = client.post("/v1/smoke").json()
    assert result["passed"] is False
    failed = {c["name"] for c in result["checks"] if not c["passed"]}
    assert failed >= ({"finite"} if mode == "nan" else {"not_blank"})


def test_nan_model_output_is_a_json_500_not_an_image(
    make_client: Callable[..., TestClient], broken_model_dirs: dict[str, Path]
) -> None:
    client = make_client(broken_model_dirs["nan"])
    resp = client.post("/v1/tryon", files=_files(image_bytes()))
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "model_output_invalid"


def test_smoke_latency_budget_is_enforced(
    make_client: Callable[..., TestClient], model_dir: Path
) -> None:
    client = make_client(model_dir, smoke_latency_budget_ms=0.001)
    result = client.post("/v1/smoke").json()
    assert result["passed"] is False
    assert all(not c["passed"] for c in result["checks"] if c["name"] == "latency_ms")


# --- bad input, one test each ----------------------------------------------------------------


def test_bad_input_non_image_bytes(client: TestClient) -> None:
    _assert_error(client.post("/v1/tryon", files=_files(b"hello, world")), 415)
    _still_serves(client)


def test_bad_input_truncated_image(client: TestClient) -> None:
    buf = io.BytesIO()
    Image.effect_noise((200, 200), 50).convert("RGB").save(buf, "JPEG")
    data = buf.getvalue()
    _assert_error(client.post("/v1/tryon", files=_files(data[: len(data) // 3])), 400)
    _still_serves(client)


def test_bad_input_zero_size_image(client: TestClient) -> None:
    _assert_error(client.post("/v1/tryon", files=_files(b"")), 400, "empty_image")
    _still_serves(client)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )  # fmt: skip

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 32)) + chunk(b"IEND", b"")
    )  # fmt: skip


def test_bad_input_enormous_dimensions(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files=_files(_png_claiming(100_000, 100_000)))
    _assert_error(resp, 413)
    _still_serves(client)


def test_bad_input_decompression_bomb(client: TestClient) -> None:
    """A real PNG of a few KB that would inflate to 2.25 Mpx (limit 1 Mpx) is refused."""
    buf = io.BytesIO()
    Image.new("L", (1500, 1500), 0).save(buf, "PNG")
    assert len(buf.getvalue()) < 20_000
    resp = client.post("/v1/tryon", files=_files(buf.getvalue()))
    _assert_error(resp, 413, "image_dimensions_too_large")
    _still_serves(client)


def test_bad_input_wrong_request_content_type(client: TestClient) -> None:
    resp = client.post("/v1/tryon", content=image_bytes(), headers={"content-type": "image/png"})
    _assert_error(resp, 415, "unsupported_media_type")
    _still_serves(client)


def test_bad_input_wrong_part_content_type(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files=_files(image_bytes(), ctype="application/pdf"))
    _assert_error(resp, 415, "unsupported_media_type")
    _still_serves(client)


def test_bad_input_missing_garment_field(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files={"person": ("p.png", image_bytes(), "image/png")})
    _assert_error(resp, 422, "missing_field")
    _still_serves(client)


def test_bad_input_field_not_a_file(client: TestClient) -> None:
    resp = client.post(
        "/v1/tryon",
        data={"person": "text"},
        files={"garment": ("g.png", image_bytes(), "image/png")},
    )
    _assert_error(resp, 422, "not_a_file")
    _still_serves(client)


def test_bad_input_unknown_category(client: TestClient) -> None:
    resp = client.post("/v1/tryon", files=_files(image_bytes()), data={"category": "hat"})
    _assert_error(resp, 422, "unknown_category")
    _still_serves(client)


def test_bad_input_oversized_body_declared(client: TestClient) -> None:
    big = b"\xff\xd8\xff" + b"\0" * 2_100_000
    _assert_error(client.post("/v1/tryon", files=_files(big)), 413, "body_too_large")
    _still_serves(client)


def test_bad_input_oversized_body_chunked(client: TestClient) -> None:
    """No Content-Length (chunked upload): the streaming cap still stops it."""

    def chunks():
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="person"; filename="p"\r\n\r\n'
        for _ in range(50):
            yield b"\0" * 65536

    resp = client.post(
        "/v1/tryon", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    _assert_error(resp, 413, "body_too_large")
    _still_serves(client)


def test_bad_input_oversized_single_image(client: TestClient) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * 1_200_000
    _assert_error(client.post("/v1/tryon", files=_files(big)), 413, "image_too_large")
    _still_serves(client)


def test_bad_input_malformed_json(client: TestClient) -> None:
    resp = client.post(
        "/v1/tryon", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_error(resp, 422, "validation_error")
    _still_serves(client)


def test_bad_input_json_missing_fields(client: TestClient) -> None:
    resp = client.post("/v1/tryon", json={"person": {"bucket": "b", "key": "k"}})
    err = _assert_error(resp, 422, "validation_error")
    assert "garment" in err["message"]


def test_bad_input_json_s3_when_s3_disabled(client: TestClient) -> None:
    ref = {"bucket": "b", "key": "k.png"}
    resp = client.post("/v1/tryon", json={"person": ref, "garment": ref})
    _assert_error(resp, 400, "s3_disabled")


def test_bad_input_malformed_multipart(client: TestClient) -> None:
    resp = client.post(
        "/v1/tryon",
        content=b"garbage without boundary",
        headers={"content-type": "multipart/form-data; boundary=zzz"},
    )
    assert 400 <= resp.status_code < 500
    assert "error" in resp.json()
    _still_serves(client)


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    _assert_error(client.get("/nope"), 404, "not_found")
    _assert_error(client.get("/v1/tryon"), 405, "method_not_allowed")


def test_not_ready_is_503_with_retry_after(tmp_path: Path) -> None:
    """A missing model keeps the app alive but unready; requests get 503 + Retry-After."""
    from tryon_renderer.app import create_app
    from tryon_renderer.settings import Settings

    app = create_app(Settings(model_path=tmp_path / "missing", cache_dir=tmp_path))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        resp = client.get("/readyz")
        assert resp.status_code == 503 and resp.headers["retry-after"]
        assert resp.headers["x-model-version"] == "none"
        tryon = client.post("/v1/tryon", files=_files(image_bytes()))
        assert tryon.status_code == 503 and json.loads(tryon.text)["error"]["code"] == "not_ready"
        assert client.post("/v1/smoke").status_code == 503
