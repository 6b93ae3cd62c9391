"""The renderer's HTTP API (FastAPI).

Endpoints: POST /v1/tryon, GET /healthz, GET /readyz, GET /metrics, GET /v1/model, POST /v1/smoke.
Why the model loads in a background task: /healthz must answer while a large model downloads, and
/readyz turns true only after load *and* warm-up, which is what Kubernetes readiness and the
operator's rollout gate key on. Every error is JSON `{"error": {code, message, status}}`, and
every response carries `X-Model-Version`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .batching import BatchingWorker, BatchRunner, pick_device
from .contract import ContractError
from .errors import ApiError, ImageError, ModelOutputError, NotReadyError
from .images import ImageLimits, decode_image, encode_image, to_tensor
from .loading import LoadedModel, ModelIncompatibleError, load_model
from .metrics import Metrics
from .s3 import S3Gateway, make_client
from .settings import Settings
from .smoke import run_smoke

log = logging.getLogger("tryon_renderer")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
ACCEPTED_PART_TYPES = ("image/", "application/octet-stream")


class S3Ref(BaseModel):
    """An object in the renderer's allowed bucket."""

    model_config = ConfigDict(extra="forbid")
    bucket: str = Field(min_length=1, max_length=63)
    key: str = Field(min_length=1, max_length=1024)


class TryOnJsonRequest(BaseModel):
    """JSON form of /v1/tryon: inputs are named S3 objects."""

    model_config = ConfigDict(extra="forbid")
    person: S3Ref
    garment: S3Ref
    category: str | None = Field(None, max_length=64)
    response: Literal["json", "image"] = "json"


class TryOnJsonResponse(BaseModel):
    bucket: str
    key: str
    url: str
    content_type: str
    model_version: str


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


class BodyTooLargeError(ApiError):
    status = 413
    code = "body_too_large"


class EdgeMiddleware:
    """Pure ASGI middleware: caps request bodies and stamps X-Model-Version on every response.

    Why pure ASGI: it sees 413 responses it sends itself and costs less than BaseHTTPMiddleware.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], state: RendererState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.state.settings.max_body_bytes

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-model-version", self.state.version.encode()))
                message["headers"] = headers
            await send(message)

        declared = _content_length(scope)
        if declared is not None and declared > limit:
            err = BodyTooLargeError(f"request body is {declared} bytes, limit is {limit}")
            await error_response(err)(scope, receive, send_with_version)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited_receive, send_with_version)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def error_response(err: ApiError) -> JSONResponse:
    headers = {}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after_s)))
    return JSONResponse(err.to_json(), status_code=err.status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        return error_response(ApiError(detail, status=422, code="validation_error"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error_response(ApiError(str(err.detail), status=err.status_code, code=code))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(ApiError("internal error", status=500, code="internal_error"))


# --- model lifecycle ------------------------------------------------------------------------


EXIT_INCOMPATIBLE_MODEL = 3


async def _load_and_warm(state: RendererState) -> None:
    """Load the model (retrying with backoff), start the worker, warm up, then mark ready."""
    settings = state.settings
    delay = min(1.0, settings.load_retry_max_s)
    while state.loaded is None and not state.draining:
        try:
            state.loaded = await asyncio.to_thread(_load_blocking, state)
        except ModelIncompatibleError as err:
            state.load_error = str(err)
            if settings.exit_on_incompatible_model:
                # Waiting would hide it: exiting makes it a CrashLoopBackOff the operator acts on.
                log.critical("model can never load here, exiting: %s", err)
                logging.shutdown()
                os._exit(EXIT_INCOMPATIBLE_MODEL)
            log.error("model can never load here (not retrying): %s", err)
            return
        except Exception as err:
            state.load_error = str(err)
            log.warning("model load failed, retrying in %.0fs: %s", delay, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.load_retry_max_s)
    if state.loaded is None:
        return
    loaded = state.loaded
    runner = BatchRunner(loaded.model, pick_device(settings.device))
    state.device = str(runner.device)
    await asyncio.to_thread(_warm_up, runner, loaded, settings)
    worker = BatchingWorker(
        runner,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        max_queue=settings.max_queue,
        metrics=state.metrics,
        parallel_batches=settings.parallel_batches if runner.device.type == "cpu" else 1,
    )
    worker.start()
    state.worker = worker
    state.metrics.model_info.info(
        {"name": loaded.name or "", "version": loaded.version_label, "uri": loaded.uri}
    )
    state.load_error = None
    state.ready = True
    state.metrics.ready.set(1)
    log.info("model %s ready on %s", loaded.uri, state.device)


def _load_blocking(state: RendererState) -> LoadedModel:
    s = state.settings
    return load_model(
        model_uri=s.model_uri,
        model_path=s.model_path,
        cache_dir=s.cache_dir,
        s3_client=state.s3_client,
        tracking_uri=s.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"),
    )


def _warm_up(runner: BatchRunner, loaded: LoadedModel, settings: Settings) -> None:
    """Run the serving resolution at batch 1 and at power-of-two batch sizes up to the max.

    Why several sizes: CPU (oneDNN) and CUDA (cuDNN autotune) build kernels per input shape, so
    the first batch of each size is slow; warming the common sizes keeps that off user requests.
    """
    c = loaded.contract
    sizes = [1] * settings.warmup_iterations
    size = 2
    while size < settings.max_batch_size:
        sizes.append(size)
        size *= 2
    for batch in [*sizes, settings.max_batch_size]:
        zeros = torch.zeros(batch, 3, c.height, c.width)
        runner.run(zeros, zeros, torch.zeros(batch, dtype=torch.long))


def _make_s3(settings: Settings) -> Any:
    endpoint = settings.s3_endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    return make_client(endpoint, settings.s3_region, timeout_s=settings.s3_timeout_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the model loads in the background once the server starts."""
    settings = settings or Settings()
    state = RendererState(settings=settings)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.s3_client = _make_s3(settings)
        if settings.allowed_bucket:
            state.gateway = S3Gateway(
                state.s3_client,
                settings.allowed_bucket,
                settings.output_prefix,
                settings.presign_expiry_s,
            )
        loader = asyncio.create_task(_load_and_warm(state), name="tryon-loader")
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
    _install_error_handlers(app)
    _add_routes(app, state)
    app.add_middleware(EdgeMiddleware, state=state)
    return app


# --- request handling -----------------------------------------------------------------------


@dataclass
class TryOnInputs:
    person: bytes
    garment: bytes
    category: str | None
    response: str


async def _read_part(form: Any, name: str, limit: int) -> bytes:
    part = form.get(name)
    if part is None:
        raise ApiError(f"missing form field {name!r}", status=422, code="missing_field")
    if not isinstance(part, UploadFile):
        raise ApiError(f"form field {name!r} must be a file", status=422, code="not_a_file")
    declared = (part.content_type or "").lower()
    if declared and not declared.startswith(ACCEPTED_PART_TYPES):
        raise ImageError(
            f"field {name!r} has content type {declared!r}; send image/jpeg, image/png or "
            "image/webp",
            status=415,
            code="unsupported_media_type",
        )
    data = await part.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{name} exceeds {limit} bytes", status=413, code="image_too_large")
    return data


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value or None
    raise ApiError(f"form field {name!r} must be text", status=422, code="validation_error")


async def _parse_multipart(request: Request, state: RendererState) -> TryOnInputs:
    limit = state.settings.max_image_bytes
    try:
        async with request.form(max_files=2, max_fields=8) as form:
            person = await _read_part(form, "person", limit)
            garment = await _read_part(form, "garment", limit)
            category = _text_field(form, "category")
            response = _text_field(form, "response") or "image"
    except StarletteHTTPException as err:  # starlette's own multipart errors (400)
        raise ApiError(str(err.detail), status=err.status_code, code="invalid_multipart") from None
    if response not in ("image", "json"):
        raise ApiError("response must be 'image' or 'json'", status=422, code="validation_error")
    return TryOnInputs(person, garment, category, response)


async def _parse_json(request: Request, state: RendererState) -> TryOnInputs:
    try:
        body = TryOnJsonRequest.model_validate_json(await request.body())
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ApiError(detail or "invalid JSON", status=422, code="validation_error") from None
    gateway = _gateway(state)
    for ref in (body.person, body.garment):
        gateway.check_ref(ref.bucket, ref.key)
    limit = state.settings.max_image_bytes
    person, garment = await asyncio.gather(
        asyncio.to_thread(gateway.read, body.person.bucket, body.person.key, limit),
        asyncio.to_thread(gateway.read, body.garment.bucket, body.garment.key, limit),
    )
    return TryOnInputs(person, garment, body.category, body.response)


def _gateway(state: RendererState) -> S3Gateway:
    if state.gateway is None:
        raise ApiError(
            "S3 inputs/outputs are disabled (TRYON_ALLOWED_BUCKET is not set)",
            status=400,
            code="s3_disabled",
        )
    return state.gateway


def _prepare(inputs: TryOnInputs, loaded: LoadedModel, limits: ImageLimits) -> tuple[Any, ...]:
    """Decode + resize both images and resolve the category (runs on a worker thread)."""
    c = loaded.contract
    try:
        category = c.category_index(inputs.category)
    except ContractError as err:
        raise ApiError(str(err), status=422, code="unknown_category") from None
    person = to_tensor(_decode_named(inputs.person, "person", limits), c.height, c.width)
    garment = to_tensor(_decode_named(inputs.garment, "garment", limits), c.height, c.width)
    return person, garment, category


def _decode_named(data: bytes, name: str, limits: ImageLimits) -> Any:
    try:
        return decode_image(data, limits)
    except ImageError as err:
        err.message = f"{name}: {err.message}"
        raise


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (429, 503):
        return "rejected"
    if status == 504:
        return "timeout"
    return "client_error" if status < 500 else "server_error"


async def _tryon(request: Request, state: RendererState) -> Response:
    loaded, worker = state.require_ready()
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("multipart/form-data"):
        inputs = await _parse_multipart(request, state)
    elif ctype.startswith("application/json"):
        inputs = await _parse_json(request, state)
    else:
        raise ApiError(
            "Content-Type must be multipart/form-data or application/json",
            status=415,
            code="unsupported_media_type",
        )
    person, garment, category = await asyncio.to_thread(_prepare, inputs, loaded, state.limits())
    out = await worker.submit(person, garment, category, state.settings.request_timeout_s)
    if not bool(torch.isfinite(out).all()):
        raise ModelOutputError("model produced non-finite output")
    fmt = state.settings.output_format
    data = await asyncio.to_thread(encode_image, out, fmt)
    if inputs.response == "image":
        return Response(data, media_type=MEDIA_TYPES[fmt])
    gateway = _gateway(state)
    key, url = await asyncio.to_thread(gateway.write_result, data, MEDIA_TYPES[fmt], fmt.lower())
    body = TryOnJsonResponse(
        bucket=gateway.allowed_bucket,
        key=key,
        url=url,
        content_type=MEDIA_TYPES[fmt],
        model_version=state.version,
    )
    return JSONResponse(body.model_dump())


TRYON_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["person", "garment"],
                    "properties": {
                        "person": {"type": "string", "format": "binary"},
                        "garment": {"type": "string", "format": "binary"},
                        "category": {"type": "string", "enum": ["upper", "lower", "dress"]},
                        "response": {"type": "string", "enum": ["image", "json"]},
                    },
                }
            },
            "application/json": {"schema": TryOnJsonRequest.model_json_schema()},
        },
    },
    "responses": {
        "200": {
            "description": "The try-on image, or JSON with the S3 key and a presigned URL",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": TryOnJsonResponse.model_json_schema()},
            },
        },
        "4XX": {"description": "Bad input: JSON error"},
        "503": {"description": "Not ready or draining; see Retry-After"},
    },
}


def _add_routes(app: FastAPI, state: RendererState) -> None:
    @app.post("/v1/tryon", openapi_extra=TRYON_OPENAPI, response_class=Response)
    async def tryon(request: Request) -> Response:
        """Render the garment onto the person."""
        start = time.perf_counter()
        status = 500
        state.metrics.in_flight.inc()
        try:
            response = await _tryon(request, state)
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
            state.metrics.request_latency.labels(_outcome(status)).observe(
                time.perf_counter() - start
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process and event loop answer."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: model loaded and warmed up, not draining."""
        if state.ready and not state.draining:
            return JSONResponse({"status": "ready", "model_version": state.version})
        reason = "draining" if state.draining else (state.load_error or "loading")
        err = NotReadyError(f"not ready: {reason}", retry_after_s=2)
        return error_response(err)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition."""
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model")
    async def model_info() -> dict[str, Any]:
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
            "max_batch_size": state.settings.max_batch_size,
            "max_wait_ms": state.settings.max_wait_ms,
            "golden_cases": len(loaded.golden.index.cases) if loaded.golden else 0,
        }

    @app.post("/v1/smoke")
    async def smoke() -> dict[str, Any]:
        """Golden-input smoke test; the operator's promotion gate (passed must be true)."""
        loaded, worker = state.require_ready()
        result = await run_smoke(
            worker,
            loaded.contract,
            loaded.golden,
            state.settings.request_timeout_s,
            state.settings.smoke_latency_budget_ms,
        )
        return {"model_version": state.version, "model_uri": loaded.uri, **result}
