"""Per-app mutable state shared by the request handlers and the model lifecycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from .batching import BatchingWorker
from .errors import NotReadyError
from .images import ImageLimits
from .loading import LoadedModel
from .metrics import Metrics
from .s3 import S3Gateway
from .settings import Settings
from .shape import ServingShape


@dataclass
class RendererState:
    """Mutable per-app state shared by handlers (kept on app.state, no module globals)."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    loaded: LoadedModel | None = None
    worker: BatchingWorker | None = None
    gateway: S3Gateway | None = None
    s3_client: Any = None
    ready: bool = False
    draining: bool = False
    load_error: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    shape: ServingShape | None = None

    @property
    def version(self) -> str:
        return self.loaded.version_label if self.loaded else "none"

    def limits(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(s.max_image_bytes, s.max_image_side, s.max_image_pixels)

    def require_ready(self) -> tuple[LoadedModel, BatchingWorker]:
        if self.draining:
            raise NotReadyError("server is shutting down", retry_after_s=1)
        if not self.ready or self.loaded is None or self.worker is None:
            raise NotReadyError("model is not loaded and warmed up yet", retry_after_s=2)
        return self.loaded, self.worker


def get_state(request: Request) -> RendererState:
    """FastAPI dependency: the state of the app serving this request."""
    state: RendererState = request.app.state.renderer
    return state
