"""Load a model by MLflow URI (`models:/<name>/<version>` or `models:/<name>@<alias>`).

Why the renderer downloads artifacts itself instead of `mlflow.pyfunc.load_model`: we want the
S3 client we control (SigV4, path-style addressing, short timeouts), a local cache keyed by
name/version that is re-verified with SHA-256 checksums before use (so a restart works even
while MLflow is down, and a corrupted cache is refetched), and safe weight loading
(`weights_only=True`). Teams' own MLflow PyTorch models (an `MLmodel` with a `pytorch` flavor
plus `tryon_contract.json`) are loaded through mlflow.pytorch.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import ssl
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from .contract import ContractError, ModelContract
from .golden import GoldenSet
from .hashing import sha256_file
from .network import build_model
from .packaging import CHECKSUMS_FILE, MODEL_INDEX, NATIVE_FORMAT

log = logging.getLogger("tryon_renderer")

# MLflow's HTTP defaults retry for minutes; the renderer's loader has its own retry loop and
# should report "registry unreachable" quickly. Applied by the entry point (process-wide env).
FAST_FAIL_MLFLOW_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# MLflow settings the renderer's own registry calls (_resolve_rest) do not implement; with any
# of them set (or a credentials file), MlflowClient asks instead.
_MLFLOW_CLIENT_ONLY_ENV = (
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_ENABLE_DB_SDK",
)
# The CA bundle requests (MlflowClient's HTTP library) would use for https, in its order.
_CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w.-]+))$")


class ModelLoadError(RuntimeError):
    """The model could not be resolved, downloaded, verified or built."""


class ModelIncompatibleError(ModelLoadError):
    """The artifact arrived intact but this renderer can never build it; retrying cannot help."""


@dataclass(frozen=True)
class ModelRef:
    """A parsed `models:/` URI."""

    name: str
    version: str | None = None
    alias: str | None = None


@dataclass
class LoadedModel:
    """Everything the serving path needs about the model it serves."""

    model: nn.Module
    contract: ModelContract
    local_dir: Path
    uri: str
    name: str | None = None
    version: str | None = None
    source: str | None = None
    golden: GoldenSet | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def version_label(self) -> str:
        return self.version or "local"


def parse_models_uri(uri: str) -> ModelRef:
    match = _MODELS_URI.match(uri)
    if not match:
        raise ModelLoadError(f"not a models:/<name>/<version> or models:/<name>@<alias> URI: {uri}")
    return ModelRef(match["name"], match["version"], match["alias"])


def verify_checksums(model_dir: Path) -> None:
    """Every file listed in checksums.json must exist with the recorded SHA-256."""
    try:
        listed = json.loads((model_dir / CHECKSUMS_FILE).read_text())["files"]
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(f"missing or invalid {CHECKSUMS_FILE}: {err}") from None
    for rel, expected in listed.items():
        path = model_dir / rel
        if not path.is_file() or sha256_file(path) != expected:
            raise ModelLoadError(f"checksum mismatch for {rel}")


def download_prefix(s3_client: Any, source: str, dest: Path) -> None:
    """Copy every object under an s3://bucket/prefix URI into dest."""
    parsed = urlparse(source)
    if parsed.scheme != "s3":
        raise ModelLoadError(f"artifact source must be s3://, got {source}")
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/").rstrip("/") + "/"
    paginator = s3_client.get_paginator("list_objects_v2")
    count = 0
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if not rel or ".." in rel.split("/"):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3_client.download_file(bucket, obj["Key"], str(target))
            count += 1
    if count == 0:
        raise ModelLoadError(f"no artifacts under {source}")


def _resolve(ref: ModelRef, tracking_uri: str | None) -> tuple[str, str]:
    """Ask the registry for (version, artifact URI).

    Two GETs of MLflow's REST API when the tracking server is plain http(s) with at most a token
    or a user and password: importing mlflow for them took seconds on a new pod's critical path
    (2-3 s on 2 cores, after torch). Anything else goes through MlflowClient.
    """
    if _rest_will_do(tracking_uri):
        assert tracking_uri is not None
        return _resolve_rest(ref, tracking_uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if ref.alias is not None:
        version = str(client.get_model_version_by_alias(ref.name, ref.alias).version)
    else:
        version = str(ref.version)
    return version, str(client.get_model_version_download_uri(ref.name, version))


def _rest_will_do(tracking_uri: str | None) -> bool:
    if not tracking_uri or urlparse(tracking_uri).scheme not in ("http", "https"):
        return False
    if any(os.environ.get(var) for var in _MLFLOW_CLIENT_ONLY_ENV):
        return False
    return not (Path.home() / ".mlflow" / "credentials").exists()


def _resolve_rest(ref: ModelRef, tracking_uri: str) -> tuple[str, str]:
    """What MlflowClient's get_model_version_by_alias and get_model_version_download_uri ask."""
    if ref.alias is not None:
        found = _registry_get(tracking_uri, "registered-models/alias",
                              {"name": ref.name, "alias": ref.alias})  # fmt: skip
        version = str(found["model_version"]["version"])
    else:
        version = str(ref.version)
    uri = _registry_get(tracking_uri, "model-versions/get-download-uri",
                        {"name": ref.name, "version": version})  # fmt: skip
    return version, str(uri["artifact_uri"])


def _registry_get(tracking_uri: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    elif user and password:
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 10)
    cafile = next((os.environ[v] for v in _CA_BUNDLE_ENV if os.environ.get(v)), None)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def fetch_model(
    uri: str, cache_dir: Path, s3_client: Any, tracking_uri: str | None
) -> tuple[Path, ModelRef, str, str | None]:
    """Return (local dir, ref, version, source) using a verified cache when possible."""
    ref = parse_models_uri(uri)
    if ref.version is not None:
        cached = cache_dir / ref.name / ref.version
        if _cache_valid(cached):
            return cached, ref, ref.version, None
    try:
        version, source = _resolve(ref, tracking_uri)
    except Exception as err:  # MLflow raises many types; all mean "cannot resolve"
        raise ModelLoadError(f"cannot resolve {uri} in the MLflow registry: {err}") from err
    target = cache_dir / ref.name / version
    if _cache_valid(target):
        return target, ref, version, source
    _download_verified(s3_client, source, target)
    return target, ref, version, source


def _cache_valid(path: Path) -> bool:
    if not (path / CHECKSUMS_FILE).exists():
        return False
    try:
        verify_checksums(path)
    except ModelLoadError:
        return False
    return True


def _download_verified(s3_client: Any, source: str, target: Path) -> None:
    """Download into a temp dir, verify, then move into place atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=target.parent))
    try:
        try:
            download_prefix(s3_client, source, tmp)
        except ModelLoadError:
            raise
        except Exception as err:
            raise ModelLoadError(f"cannot download {source}: {err}") from err
        verify_checksums(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_from_dir(model_dir: Path) -> tuple[nn.Module, ModelContract, dict[str, Any]]:
    """Build the model found in a local artifact directory (native or mlflow.pytorch)."""
    try:
        contract = ModelContract.load(model_dir)
    except ContractError as err:
        raise ModelLoadError(str(err)) from err
    if (model_dir / MODEL_INDEX).exists():
        return _load_native(model_dir, contract)
    if (model_dir / "MLmodel").exists():
        return _load_mlflow_pytorch(model_dir), contract, {"format": "mlflow-pytorch"}
    raise ModelLoadError(f"{model_dir} has neither {MODEL_INDEX} nor an MLmodel file")


def _load_native(
    model_dir: Path, contract: ModelContract
) -> tuple[nn.Module, ModelContract, dict[str, Any]]:
    try:
        index = json.loads((model_dir / MODEL_INDEX).read_text())
        if index.get("format") != NATIVE_FORMAT:
            raise ModelLoadError(f"unknown model format {index.get('format')!r}")
        state = torch.load(model_dir / index["weights"], map_location="cpu", weights_only=True)
        model = build_model(index["arch"], state)
    except ModelLoadError:
        raise
    except (ValueError, KeyError) as err:
        raise ModelIncompatibleError(f"cannot build native model: {err}") from err
    except Exception as err:
        raise ModelLoadError(f"cannot build native model: {err}") from err
    meta = {"format": NATIVE_FORMAT, "arch": index["arch"]}
    return model, contract, meta


def _load_mlflow_pytorch(model_dir: Path) -> nn.Module:
    try:
        import mlflow.pytorch

        model: nn.Module = mlflow.pytorch.load_model(str(model_dir), map_location="cpu")
    except Exception as err:
        raise ModelLoadError(f"cannot load MLflow PyTorch model: {err}") from err
    return model


def load_model(
    *,
    model_uri: str | None,
    model_path: Path | None,
    cache_dir: Path,
    s3_client: Any,
    tracking_uri: str | None,
) -> LoadedModel:
    """Load from a models:/ URI (registry + S3) or, for development, a local directory."""
    if model_path is not None:
        model, contract, meta = load_from_dir(model_path)
        golden = GoldenSet.load(model_path)
        return LoadedModel(
            model, contract, model_path, str(model_path), golden=golden, metadata=meta
        )
    if not model_uri:
        raise ModelLoadError("set TRYON_MODEL_URI (models:/<name>/<version>) or TRYON_MODEL_PATH")
    started = time.monotonic()
    local, ref, version, source = fetch_model(model_uri, cache_dir, s3_client, tracking_uri)
    fetched = time.monotonic()
    log.info("model fetched: %s (version %s) in %.2f s", model_uri, version, fetched - started)
    model, contract, meta = load_from_dir(local)
    log.info("model loaded: %s in %.2f s", model_uri, time.monotonic() - fetched)
    return LoadedModel(
        model,
        contract,
        local,
        model_uri,
        name=ref.name,
        version=version,
        source=source,
        golden=GoldenSet.load(local),
        metadata=meta,
    )
