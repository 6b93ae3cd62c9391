"""Domain errors that carry their HTTP meaning, so every layer can fail with a clear 4xx/5xx.

Why: bad input must never surface as a 500. Each module raises an `ApiError` subclass with a
status, a stable machine-readable code and a human message; app.py renders them as JSON.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status, a stable code and a message safe to show to clients."""

    status: int = 400
    code: str = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.retry_after_s = retry_after_s

    def to_json(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


class ImageError(ApiError):
    """The uploaded or fetched bytes are not an acceptable image."""

    code = "invalid_image"


class StorageError(ApiError):
    """An S3 reference is invalid, missing, forbidden, or S3 is unreachable."""

    code = "storage_error"


class OverloadedError(ApiError):
    """The batching queue is full or the server is draining; the client should retry later."""

    status = 429
    code = "overloaded"


class NotReadyError(ApiError):
    """The model is not loaded or not warmed up yet."""

    status = 503
    code = "not_ready"


class ModelOutputError(ApiError):
    """The model produced unusable output (NaN/Inf); a server-side fault, not a client one."""

    status = 500
    code = "model_output_invalid"
