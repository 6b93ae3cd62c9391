"""MLflow registry webhooks: a fast trigger for a reconcile. Polling stays the source of truth.

MLflow signs ``{delivery_id}.{timestamp}.{body}`` with HMAC-SHA256 and sends
``X-MLflow-Signature: v1,<base64>``, ``X-MLflow-Delivery-Id`` and ``X-MLflow-Timestamp``.
It sends over https only; the receiver's TLS lives in webhook_tls.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .handover import Handover

from ..api.vocabulary import DELIVERY_HEADER as DELIVERY_HEADER
from ..api.vocabulary import SIGNATURE_HEADER as SIGNATURE_HEADER
from ..api.vocabulary import TIMESTAMP_HEADER as TIMESTAMP_HEADER
from ..api.vocabulary import WEBHOOK_PATH

log = logging.getLogger(__name__)


class WebhookRejectedError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    digest = hmac.new(
        secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookVerifier:
    """Checks signature, freshness and uniqueness of one delivery."""

    def __init__(
        self, secret: str, *, tolerance: float = 300.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secret = secret
        self._tolerance = tolerance
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        signature = headers.get(SIGNATURE_HEADER, "")
        delivery_id = headers.get(DELIVERY_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        if not signature or not delivery_id or not timestamp:
            raise WebhookRejectedError(400, "missing signature, delivery id or timestamp header")
        try:
            sent = float(timestamp)
            text = body.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as err:
            raise WebhookRejectedError(400, "malformed timestamp or body") from err
        expected = sign(self._secret, delivery_id, timestamp, text)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise WebhookRejectedError(401, "signature does not match")
        now = self._clock()
        if abs(now - sent) > self._tolerance:
            raise WebhookRejectedError(401, "timestamp outside the allowed window")
        with self._lock:
            for key, seen_at in list(self._seen.items()):
                if now - seen_at > 2 * self._tolerance:
                    del self._seen[key]
            if delivery_id in self._seen:
                raise WebhookRejectedError(409, "delivery already processed (replay)")
            self._seen[delivery_id] = now
        try:
            payload = json.loads(text)
        except ValueError as err:
            raise WebhookRejectedError(400, "body is not JSON") from err
        if not isinstance(payload, dict):
            raise WebhookRejectedError(400, "body is not a JSON object")
        return payload


def registered_model_of(payload: Mapping[str, Any]) -> str | None:
    data = payload.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("name"), str):
        return str(data["name"])
    return None


def make_app(
    verifier: WebhookVerifier,
    trigger: Callable[[str], int],
    handover: Handover | None = None,
) -> web.Application:
    """``trigger(registered_model)`` schedules reconciles and returns how many it scheduled;
    ``handover`` passes a delivery to the leader while this replica is a standby."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if handover is not None:
            answer = await handover(request.headers, body)
            if answer is not None:
                return answer
        try:
            payload = verifier.verify(request.headers, body)
        except WebhookRejectedError as err:
            log.warning("webhook rejected: %s", err.reason)
            return web.json_response({"error": err.reason}, status=err.status)
        name = registered_model_of(payload)
        triggered = trigger(name) if name else 0
        log.info(
            "webhook %s.%s for %r accepted: %d reconcile(s) woken",
            payload.get("entity"),
            payload.get("action"),
            name,
            triggered,
        )
        return web.json_response({"accepted": True, "triggered": triggered})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post(WEBHOOK_PATH, handle)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(
    app: web.Application, host: str, port: int, *, tls: ssl.SSLContext | None = None
) -> web.AppRunner:
    """Starts the receiver: https with ``tls`` (webhook_tls.receiver_tls), else plain http."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    scheme = "https" if tls is not None else "http"
    log.info("webhook receiver listening on %s://%s:%d%s", scheme, host, port, WEBHOOK_PATH)
    return runner
