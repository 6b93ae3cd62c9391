"""S3 key validation, error translation, packaging layout, checksums and local loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from botocore.exceptions import ClientError, EndpointConnectionError
from tryon_renderer.errors import StorageError
from tryon_renderer.loading import (
    FAST_FAIL_MLFLOW_ENV,
    ModelIncompatibleError,
    ModelLoadError,
    fetch_model,
    load_from_dir,
    parse_models_uri,
    verify_checksums,
)
from tryon_renderer.network import FaultyOutput, TryOnNet
from tryon_renderer.s3 import S3Gateway, translate_error, validate_key

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "key",
    ["", "/abs/key.png", "a/../b.png", "..", "./x", "a\\b", "a\x00b", "x" * 1025, "a/./b"],
)
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(StorageError) as info:
        validate_key(key)
    assert info.value.status == 400


@pytest.mark.parametrize("key", ["person.png", "users/42/photo 1.jpg", "a..b/c.webp"])
def test_good_keys_pass(key: str) -> None:
    assert validate_key(key) == key


def test_other_bucket_is_forbidden_before_any_network_call() -> None:
    gateway = S3Gateway(client=None, allowed_bucket="photos")
    with pytest.raises(StorageError) as info:
        gateway.check_ref("secrets", "x.png")
    assert info.value.status == 403


@pytest.mark.parametrize(
    ("code", "http", "status"),
    [("NoSuchKey", 404, 404), ("NoSuchBucket", 404, 404), ("AccessDenied", 403, 403),
     ("InternalError", 500, 502)],
)  # fmt: skip
def test_client_errors_translate(code: str, http: int, status: int) -> None:
    err = ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": http}}, "GetObject"
    )
    assert translate_error(err, "obj").status == status


def test_connection_errors_translate_to_503() -> None:
    err = translate_error(EndpointConnectionError(endpoint_url="http://x"), "obj")
    assert err.status == 503 and err.retry_after_s


def test_models_uri_parsing() -> None:
    assert parse_models_uri("models:/tryon/7").version == "7"
    assert parse_models_uri("models:/tryon@production").alias == "production"
    for bad in ("models:/tryon", "runs:/abc/model", "models:/a/b/c", "models:/x/latest"):
        with pytest.raises(ModelLoadError):
            parse_models_uri(bad)


def test_package_layout_and_checksums(model_dir: Path) -> None:
    names = {p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()}
    assert {"tryon_model.json", "tryon_contract.json", "weights.pt", "checksums.json",
            "golden/golden.json", "golden/reference_0.png"} <= names  # fmt: skip
    verify_checksums(model_dir)
    model, contract, meta = load_from_dir(model_dir)
    assert isinstance(model, TryOnNet) and contract.height == 64
    assert meta["format"] == "tryon-native"


def test_broken_model_loads_as_faulty(broken_model_dirs: dict[str, Path]) -> None:
    model, _, meta = load_from_dir(broken_model_dirs["nan"])
    assert isinstance(model, FaultyOutput) and meta["arch"]["failure_mode"] == "nan"


def test_unloadable_model_is_reported_as_incompatible_not_transient(
    broken_model_dirs: dict[str, Path],
) -> None:
    with pytest.raises(ModelIncompatibleError, match="deliberately unloadable"):
        load_from_dir(broken_model_dirs["unloadable"])


def test_tampered_file_fails_checksum(tmp_path: Path, model_dir: Path) -> None:
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    (copy / "weights.pt").write_bytes(b"evil")
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        verify_checksums(copy)


def test_valid_cache_is_used_without_registry(tmp_path: Path, model_dir: Path) -> None:
    """A verified cached version loads even when neither MLflow nor S3 is reachable."""
    import shutil

    shutil.copytree(model_dir, tmp_path / "tryon" / "3")
    local, ref, version, _ = fetch_model(
        "models:/tryon/3", tmp_path, s3_client=None, tracking_uri="http://127.0.0.1:9"
    )
    assert local == tmp_path / "tryon" / "3" and version == "3" and ref.name == "tryon"


def test_corrupt_cache_forces_refetch(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    for var, value in FAST_FAIL_MLFLOW_ENV.items():
        monkeypatch.setenv(var, value)

    shutil.copytree(model_dir, tmp_path / "tryon" / "3")
    (tmp_path / "tryon" / "3" / "tryon_contract.json").write_text(json.dumps({"height": 1}))
    with pytest.raises(ModelLoadError, match="cannot resolve"):
        fetch_model("models:/tryon/3", tmp_path, s3_client=None, tracking_uri="http://127.0.0.1:9")


def test_model_dir_without_index_is_rejected(tmp_path: Path, model_dir: Path) -> None:
    (tmp_path / "tryon_contract.json").write_text((model_dir / "tryon_contract.json").read_text())
    with pytest.raises(ModelLoadError, match="neither"):
        load_from_dir(tmp_path)


class _BringYourOwn(torch.nn.Module):
    """A team's own contract-following model: blends person and garment by category."""

    def forward(self, person, garment, category):  # type: ignore[no-untyped-def]
        weight = (category.float() / 2.0)[:, None, None, None]
        return person * (1 - weight) + garment * weight


def test_bring_your_own_mlflow_pytorch_model(tmp_path: Path) -> None:
    """An MLflow PyTorch model directory plus tryon_contract.json is served as-is."""
    import mlflow.pytorch
    from tryon_renderer.contract import ModelContract

    target = tmp_path / "byo"
    mlflow.pytorch.save_model(
        _BringYourOwn(), str(target), pip_requirements=["torch"], serialization_format="pickle"
    )
    ModelContract(height=32, width=32).save(target)
    model, contract, meta = load_from_dir(target)
    assert meta["format"] == "mlflow-pytorch" and contract.height == 32
    person, garment = torch.ones(1, 3, 32, 32), -torch.ones(1, 3, 32, 32)
    out = model(person, garment, torch.tensor([2]))
    assert torch.allclose(out, garment)
