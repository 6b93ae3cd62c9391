"""Parsing a /v1/tryon request (multipart or JSON with S3 objects) into decoded tensors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .contract import ContractError
from .errors import ApiError, ImageError
from .images import ImageLimits, decode_image, to_tensor
from .loading import LoadedModel
from .s3 import S3Gateway
from .schemas import TryOnJsonRequest
from .state import RendererState

ACCEPTED_PART_TYPES = ("image/", "application/octet-stream")


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


async def parse_multipart(request: Request, state: RendererState) -> TryOnInputs:
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


async def parse_json(request: Request, state: RendererState) -> TryOnInputs:
    try:
        body = TryOnJsonRequest.model_validate_json(await request.body())
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ApiError(detail or "invalid JSON", status=422, code="validation_error") from None
    gateway = gateway_of(state)
    for ref in (body.person, body.garment):
        gateway.check_ref(ref.bucket, ref.key)
    limit = state.settings.max_image_bytes
    person, garment = await asyncio.gather(
        asyncio.to_thread(gateway.read, body.person.bucket, body.person.key, limit),
        asyncio.to_thread(gateway.read, body.garment.bucket, body.garment.key, limit),
    )
    return TryOnInputs(person, garment, body.category, body.response)


def gateway_of(state: RendererState) -> S3Gateway:
    if state.gateway is None:
        raise ApiError(
            "S3 inputs/outputs are disabled (TRYON_ALLOWED_BUCKET is not set)",
            status=400,
            code="s3_disabled",
        )
    return state.gateway


def prepare(inputs: TryOnInputs, loaded: LoadedModel, limits: ImageLimits) -> tuple[Any, ...]:
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
