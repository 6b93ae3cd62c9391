"""Smoke-test gateway: ``POST /v1/smoke`` on the renderer behind a Service."""

from __future__ import annotations

import httpx

from ..decision import SmokeOutcome


class SmokeTester:
    """Calls the renderer's golden-input check; never raises, answers with an outcome."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        self._timeout = timeout

    def check(self, base_url: str, version: str, timeout: float | None = None) -> SmokeOutcome:
        url = base_url.rstrip("/") + "/v1/smoke"
        try:
            response = httpx.post(
                url, json={"expectedVersion": version}, timeout=timeout or self._timeout
            )
        except httpx.HTTPError as err:
            return SmokeOutcome(
                passed=False, reachable=False, message=f"smoke endpoint {url} unreachable: {err}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("passed"), bool):
            if response.status_code >= 500 or response.status_code in (404, 503):
                return SmokeOutcome(
                    passed=False,
                    reachable=False,
                    message=f"smoke endpoint answered {response.status_code}",
                )
            return SmokeOutcome(
                passed=False,
                message=f"smoke endpoint answered {response.status_code} without a verdict",
            )
        passed = bool(body["passed"])
        detail = body.get("reason") or body.get("message") or body.get("detail") or ""
        message = "smoke test passed" if passed else f"smoke test failed: {detail or body}"
        return SmokeOutcome(passed=passed, message=str(message)[:500])
