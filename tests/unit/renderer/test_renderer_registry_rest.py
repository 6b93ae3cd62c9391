"""The renderer asks MLflow's REST API itself for a version's artifacts (no mlflow import on a new
pod's critical path), and leaves anything it does not implement to MlflowClient."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from tryon_renderer import loading
from tryon_renderer.loading import ModelLoadError, ModelRef, fetch_model

pytestmark = pytest.mark.unit

SOURCE = "s3://models/7/artifacts/model"


class _Registry:
    """Answers the two GETs MlflowClient would send; records paths, queries and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, list[str]], str | None]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                registry.seen.append((url.path, query, self.headers.get("Authorization")))
                if url.path.endswith("/registered-models/alias"):
                    body: dict[str, Any] = {"model_version": {"name": "tryon", "version": "7"}}
                elif url.path.endswith("/model-versions/get-download-uri"):
                    body = {"artifact_uri": SOURCE}
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Registry]:
    for var in (*loading._MLFLOW_CLIENT_ONLY_ENV, *loading._CA_BUNDLE_ENV, "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mlflow/credentials
    server = _Registry()
    yield server
    server.server.shutdown()


def test_alias_and_download_uri_come_from_the_rest_api(registry: _Registry) -> None:
    version, source = loading._resolve(ModelRef("tryon", alias="production"), registry.url)
    assert (version, source) == ("7", SOURCE)
    assert [(path, query) for path, query, _ in registry.seen] == [
        ("/api/2.0/mlflow/registered-models/alias", {"name": ["tryon"], "alias": ["production"]}),
        ("/api/2.0/mlflow/model-versions/get-download-uri", {"name": ["tryon"], "version": ["7"]}),
    ]


def test_a_pinned_version_needs_only_the_download_uri(
    registry: _Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    assert loading._resolve(ModelRef("tryon", version="7"), registry.url) == ("7", SOURCE)
    assert [(path, auth) for path, _, auth in registry.seen] == [
        ("/api/2.0/mlflow/model-versions/get-download-uri", "Bearer t0ken")
    ]


def test_basic_credentials_are_sent(registry: _Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ml")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    loading._resolve(ModelRef("tryon", version="7"), registry.url)
    assert registry.seen[0][2] == "Basic bWw6cHc="


@pytest.mark.parametrize(
    ("uri", "env", "expected"),
    [
        ("http://mlflow:5000", {}, True),
        ("https://mlflow.example", {}, True),
        ("https://mlflow.example", {"MLFLOW_TRACKING_INSECURE_TLS": "true"}, False),
        ("https://mlflow.example", {"MLFLOW_TRACKING_SERVER_CERT_PATH": "/ca.pem"}, False),
        ("https://mlflow.example", {"REQUESTS_CA_BUNDLE": "/ca.pem"}, True),
        ("http://mlflow:5000", {"CURL_CA_BUNDLE": "/ca.pem"}, True),
        ("databricks", {}, False),
        ("file:///tmp/mlruns", {}, False),
        (None, {}, False),
    ],
)
def test_mlflow_client_keeps_what_the_rest_path_does_not_implement(
    registry: _Registry,
    monkeypatch: pytest.MonkeyPatch,
    uri: str | None,
    env: dict[str, str],
    expected: bool,
) -> None:
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert loading._rest_will_do(uri) is expected


def test_a_credentials_file_goes_to_mlflow_client(registry: _Registry, tmp_path: Path) -> None:
    (tmp_path / ".mlflow").mkdir()
    (tmp_path / ".mlflow" / "credentials").write_text("[mlflow]\nmlflow_tracking_token = x\n")
    assert loading._rest_will_do(registry.url) is False


def test_an_unreachable_registry_is_a_load_error(registry: _Registry, tmp_path: Path) -> None:
    registry.server.shutdown()
    registry.server.server_close()
    with pytest.raises(ModelLoadError, match="cannot resolve"):
        fetch_model("models:/tryon@production", tmp_path, s3_client=None,
                    tracking_uri=registry.url)  # fmt: skip
