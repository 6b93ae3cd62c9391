"""The HTTP routes: POST /v1/tryon, /v1/smoke, GET /healthz, /readyz, /metrics, /v1/model.

Handlers get the app's `RendererState` through a FastAPI dependency (`get_state`), so the router
holds no state and one process could serve several apps (tests do).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .error_handlers import error_response
from .errors import ApiError, ModelOutputError, NotReadyError
from .images import encode_image
from .inputs import gateway_of, parse_json, parse_multipart, prepare
from .schemas import TryOnJsonResponse, tryon_openapi
from .smoke import run_smoke
from .state import RendererState, get_state

log = logging.getLogger("tryon_renderer")
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
StateDep = Annotated[RendererState, Depends(get_state)]
router = APIRouter()


def outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (429, 503):
        return "rejected"
    if status == 504:
        return "timeout"
    return "client_error" if status < 500 else "server_error"


async def render_tryon(request: Request, state: RendererState) -> Response:
    loaded, worker = state.require_ready()
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        inputs = await parse_multipart(request, state)
    elif ctype.startswith("application/json"):
        inputs = await parse_json(request, state)
    else:
        raise ApiError(
            "Content-Type must be multipart/form-data or application/json",
            status=415,
            code="unsupported_media_type",
        )
    person, garment, category = await asyncio.to_thread(prepare, inputs, loaded, state.limits())
    out = await worker.submit(person, garment, category, state.settings.request_timeout_s)
    if not bool(torch.isfinite(out).all()):
        raise ModelOutputError("model produced non-finite output")
    fmt = state.settings.output_format
    data = await asyncio.to_thread(encode_image, out, fmt)
    if inputs.response == "image":
        return Response(data, media_type=MEDIA_TYPES[fmt])
    gateway = gateway_of(state)
    key, url = await asyncio.to_thread(gateway.write_result, data, MEDIA_TYPES[fmt], fmt.lower())
    body = TryOnJsonResponse(
        bucket=gateway.allowed_bucket,
        key=key,
        url=url,
        content_type=MEDIA_TYPES[fmt],
        model_version=state.version,
    )
    return JSONResponse(body.model_dump())


@router.post("/v1/tryon", openapi_extra=tryon_openapi(), response_class=Response)
async def tryon(request: Request, state: StateDep) -> Response:
    """Render the garment onto the person."""
    start = time.perf_counter()
    status = 500
    state.metrics.in_flight.inc()
    try:
        response = await render_tryon(request, state)
        status = response.status_code
        return response
    except ApiError as err:
        status = err.status
        raise
    except Exception as err:  # keep the JSON shape and X-Model-Version on server faults
        log.exception("unexpected error in /v1/tryon")
        raise ApiError("internal error", status=500, code="internal_error") from err
    finally:
        state.metrics.in_flight.dec()
        state.metrics.request_latency.labels(outcome(status)).observe(time.perf_counter() - start)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process and event loop answer."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness: model loaded and warmed up, not draining."""
    if state.ready and not state.draining:
        return JSONResponse({"status": "ready", "model_version": state.version})
    reason = "draining" if state.draining else (state.load_error or "loading")
    err = NotReadyError(f"not ready: {reason}", retry_after_s=2)
    return error_response(err)


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """Prometheus exposition."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/model")
async def model_info(state: StateDep) -> dict[str, Any]:
    """The served model version, its contract and serving parameters."""
    loaded = state.loaded
    if loaded is None:
        raise NotReadyError(f"no model loaded: {state.load_error or 'loading'}")
    return {
        "name": loaded.name,
        "version": loaded.version_label,
        "uri": loaded.uri,
        "source": loaded.source,
        "format": loaded.metadata.get("format"),
        "contract": loaded.contract.model_dump(),
        "ready": state.ready,
        "device": state.device,
        "precision": state.precision,
        "max_batch_size": state.shape.max_batch_size if state.shape else None,
        "shape": state.shape.as_dict() if state.shape else None,
        "max_wait_ms": state.settings.max_wait_ms,
        "golden_cases": len(loaded.golden.index.cases) if loaded.golden else 0,
    }


@router.post("/v1/smoke")
async def smoke(state: StateDep) -> dict[str, Any]:
    """Golden-input smoke test; the operator's promotion gate (passed must be true)."""
    loaded, worker = state.require_ready()
    result = await run_smoke(
        worker,
        loaded.contract,
        loaded.golden,
        state.settings.request_timeout_s,
        state.settings.smoke_latency_budget_ms,
    )
    log.info("smoke test answered: passed=%s", result.get("passed"))
    return {"model_version": state.version, "model_uri": loaded.uri, **result}
