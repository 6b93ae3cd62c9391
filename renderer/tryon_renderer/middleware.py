"""Pure ASGI middleware: request body cap and the X-Model-Version header on every response.

Why pure ASGI: it sees 413 responses it sends itself and costs less than BaseHTTPMiddleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .error_handlers import error_response
from .errors import ApiError
from .state import RendererState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLargeError(ApiError):
    status = 413
    code = "body_too_large"


class EdgeMiddleware:
    """Caps request bodies and stamps X-Model-Version on every response."""

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
