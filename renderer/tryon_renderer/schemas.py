"""Request and response schemas of the HTTP API, and the OpenAPI description of /v1/tryon."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .contract import DEFAULT_CATEGORIES


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


def tryon_openapi(categories: tuple[str, ...] = DEFAULT_CATEGORIES) -> dict[str, Any]:
    """OpenAPI extra for POST /v1/tryon; `categories` from the model contract."""
    return {
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
                            "category": {"type": "string", "enum": list(categories)},
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
