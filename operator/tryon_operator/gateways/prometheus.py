"""Prometheus gateway: one instant query summed to a number, for the operator's own scaling loop.

Only the server the operator is configured with (``TRYON_PROMETHEUS_URL``) or the TryOnModel names
(``spec.autoscaling.prometheusAddress``) is asked, at ``/api/v1/query`` and nothing else.
"""

from __future__ import annotations

import math

import httpx

from ..api.errors import SignalError


class PrometheusSignals:
    """Reads a serving signal; every failure becomes a ``SignalError`` said in words."""

    def __init__(self, *, timeout: float = 3.0) -> None:
        self._http = httpx.Client(timeout=timeout)

    def total(self, server: str, query: str) -> float | None:
        """The value of a query that sums to one sample; None when no series matches."""
        url = server.rstrip("/") + "/api/v1/query"
        try:
            response = self._http.get(url, params={"query": query})
        except httpx.HTTPError as err:
            raise SignalError(f"Prometheus at {server} unreachable: {err}") from err
        try:
            body = response.json()
        except ValueError as err:
            raise SignalError(
                f"Prometheus at {server} answered {response.status_code} without JSON"
            ) from err
        if response.status_code != 200 or body.get("status") != "success":
            raise SignalError(
                f"Prometheus at {server} refused the query ({response.status_code}): "
                f"{body.get('error') or body}"
            )
        result = (body.get("data") or {}).get("result") or []
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise SignalError(f"Prometheus at {server} answered an unreadable sample") from err
        return None if math.isnan(value) else value
