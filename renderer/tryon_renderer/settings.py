"""Renderer settings from the environment (prefix TRYON_) and command-line flags.

Why pydantic-settings: one validated object built at start-up; a typo in a number fails fast
instead of at the first request. Standard AWS_* / MLFLOW_* variables are read by boto3/MLflow.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All knobs of the renderer process."""

    model_config = SettingsConfigDict(env_prefix="TRYON_", extra="ignore", protected_namespaces=())

    # Model source: a registry URI (production) or a local artifact dir (development).
    model_uri: str | None = None
    model_path: Path | None = None
    tracking_uri: str | None = None  # falls back to MLFLOW_TRACKING_URI
    cache_dir: Path = Path("/tmp/tryon-model-cache")

    # Serving.
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    device: str = "auto"
    # auto: bf16 on a GPU (fp16 without bf16) and on CPUs with native bf16, checked against fp32
    # before serving (tryon_renderer.precision); fp32, bf16 or fp16 force one.
    precision: str = Field("auto", pattern="^(auto|fp32|bf16|fp16)$")
    # The serving shape: unset dimensions are measured at warm-up (tryon_renderer.shape) and the
    # fastest shape whose p99 fits latency_budget_ms serves; a set one is pinned.
    torch_threads: int | None = Field(None, ge=0)  # 0: torch's default count
    parallel_batches: int | None = Field(None, ge=1, le=64)  # CPU only; 1 on a GPU
    max_batch_size: int | None = Field(None, ge=1, le=256)
    latency_budget_ms: float = Field(500.0, gt=0)  # forward p99 per batch + max_wait_ms
    shape_tuning_max_s: float = Field(5.0, ge=0)  # no new shape is started after this
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    max_queue: int = Field(64, ge=1)
    request_timeout_s: float = Field(30.0, gt=0)
    drain_timeout_s: float = Field(30.0, ge=0)
    warmup_iterations: int = Field(2, ge=1)
    load_retry_max_s: float = Field(30.0, gt=0)  # cap of the load retry backoff
    # A model this renderer can never build (unknown format/architecture) ends the process.
    exit_on_incompatible_model: bool = True
    output_format: str = Field("PNG", pattern="^(PNG|JPEG|WEBP)$")

    # Input limits.
    max_body_bytes: int = Field(25 * 1024 * 1024, gt=0)
    max_image_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_image_side: int = Field(4096, gt=0)
    max_image_pixels: int = Field(4096 * 4096, gt=0)

    # S3 for inputs/outputs named in JSON requests, and for model artifacts.
    s3_endpoint_url: str | None = None  # falls back to MLFLOW_S3_ENDPOINT_URL / AWS defaults
    s3_region: str = "us-east-1"
    s3_timeout_s: float = Field(5.0, gt=0)
    allowed_bucket: str | None = None
    output_prefix: str = "tryon-results/"
    presign_expiry_s: int = Field(900, gt=0, le=7 * 24 * 3600)

    # Smoke test.
    smoke_latency_budget_ms: float | None = None  # overrides the model's own budget
