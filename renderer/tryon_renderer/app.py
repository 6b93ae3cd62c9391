"""The renderer's HTTP API (FastAPI): builds the app from its parts.

Endpoints (`routes.py`): POST /v1/tryon, GET /healthz, GET /readyz, GET /metrics, GET /v1/model,
POST /v1/smoke. The model loads in a background task (`lifecycle.py`); request parsing is in
`inputs.py`, schemas in `schemas.py`, the JSON error mapping in `error_handlers.py`, the body
cap and X-Model-Version header in `middleware.py`. Every error is JSON
`{"error": {code, message, status}}`, and every response carries `X-Model-Version`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import torch
from fastapi import FastAPI

from .error_handlers import install_error_handlers
from .lifecycle import load_and_warm, make_s3
from .middleware import EdgeMiddleware
from .routes import router
from .s3 import S3Gateway
from .settings import Settings
from .state import RendererState

__all__ = ["RendererState", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model loads in the background once the server starts."""
    settings = settings or Settings()
    state = RendererState(settings=settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.s3_client = make_s3(settings)
        if settings.allowed_bucket:
            state.gateway = S3Gateway(
                state.s3_client,
                settings.allowed_bucket,
                settings.output_prefix,
                settings.presign_expiry_s,
            )
        loader = asyncio.create_task(load_and_warm(state), name="tryon-loader")
        try:
            yield
        finally:
            state.draining = True
            state.ready = False
            state.metrics.ready.set(0)
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loader
            if state.worker is not None:
                await state.worker.stop(settings.drain_timeout_s)

    app = FastAPI(
        title="tryon-renderer",
        version="1.0.0",
        description="Virtual try-on rendering: person + garment -> try-on image.",
        lifespan=lifespan,
    )
    app.state.renderer = state
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(EdgeMiddleware, state=state)
    return app
