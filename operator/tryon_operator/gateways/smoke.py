"""Smoke-test gateway: ``POST /v1/smoke`` on the renderer behind a Service."""

from __future__ import annotations

from typing import Any

import httpx

from ..decide.decision import SmokeOutcome


class SmokeTester:
    """Calls the renderer's golden-input check; never raises, answers with an outcome."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        self._timeout = timeout
        # One client: building one per call (its SSL context) was 12 % of the operator's time in
        # a wave of 100 promotions. No keep-alive: a kept connection to the preview Service could
        # stay on a pod of the colour it selected before.
        self._http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0))

    def check(self, base_url: str, version: str, timeout: float | None = None) -> SmokeOutcome:
        url = base_url.rstrip("/") + "/v1/smoke"
        try:
            response = self._http.post(
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
        if passed:
            return SmokeOutcome(passed=True, message="smoke test passed")
        message = f"smoke test failed: {failure_summary(body)}"
        return SmokeOutcome(passed=False, message=message[:500])


def failure_summary(body: dict[str, Any]) -> str:
    """Names the failed checks ("finite on case 0: 49152 > 0"), not the renderer's raw JSON."""
    failed = [c for c in body.get("checks") or [] if isinstance(c, dict) and not c.get("passed")]
    if not failed:
        detail = body.get("reason") or body.get("message") or body.get("detail")
        return str(detail) if detail else "no check reported why"
    parts = []
    for check in failed[:4]:
        where = f" on case {check['case']}" if check.get("case") is not None else ""
        numbers = ""
        if "value" in check and "threshold" in check:
            numbers = f": {check['value']} vs threshold {check['threshold']}"
        parts.append(f"{check.get('name', '?')}{where}{numbers}")
    more = f" (+{len(failed) - 4} more)" if len(failed) > 4 else ""
    return "; ".join(parts) + more
