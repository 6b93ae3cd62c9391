"""MLflow Model Registry gateway over its REST API.

httpx is used instead of ``MlflowClient`` so each call has a short timeout and no hidden retry loop
(the operator retries on its own schedule), and each TryOnModel may name its own tracking server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ..api.errors import ModelResolutionError, RegistryError
from ..api.models import ModelRef

API = "/api/2.0/mlflow"


@dataclass(frozen=True)
class ResolvedModel:
    version: str
    run_id: str | None
    source: str | None


class MlflowRegistry:
    """Resolves a TryOnModel's model selector to one concrete, READY model version."""

    def __init__(self, *, timeout: float = 5.0, token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def resolve(self, tracking_uri: str, ref: ModelRef) -> ResolvedModel:
        kind, value = ref.selector
        name = ref.registered_model
        if kind == "alias":
            body = self._get(
                tracking_uri,
                "/registered-models/alias",
                {"name": name, "alias": value},
                not_found=("AliasNotFound", f"alias {value!r} of {name!r}"),
            )
            mv = body.get("model_version") or {}
        elif kind == "stage":
            body = self._post(
                tracking_uri,
                "/registered-models/get-latest-versions",
                {"name": name, "stages": [value]},
            )
            versions = body.get("model_versions") or []
            if not versions:
                raise ModelResolutionError(
                    "StageEmpty", f"registered model {name!r} has no version in stage {value!r}"
                )
            mv = max(versions, key=lambda v: int(v.get("version", 0)))
        else:
            body = self._get(
                tracking_uri,
                "/model-versions/get",
                {"name": name, "version": value},
                not_found=("VersionNotFound", f"version {value} of {name!r}"),
            )
            mv = body.get("model_version") or {}
        return _ready_version(name, mv)

    def set_version_tag(
        self, tracking_uri: str, name: str, version: str, key: str, value: str
    ) -> None:
        try:
            self._post(
                tracking_uri,
                "/model-versions/set-tag",
                {"name": name, "version": version, "key": key, "value": value[:5000]},
            )
        except ModelResolutionError as err:
            raise RegistryError(f"could not tag {name} v{version}: {err.message}") from err

    # ------------------------------------------------------------------ HTTP

    def _get(
        self, base: str, path: str, params: dict[str, str], *, not_found: tuple[str, str]
    ) -> dict[str, Any]:
        return self._send("GET", base, path, params=params, not_found=not_found)

    def _post(self, base: str, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", base, path, json=payload, not_found=None)

    def _send(
        self, method: str, base: str, path: str, *, not_found: tuple[str, str] | None, **kwargs: Any
    ) -> dict[str, Any]:
        url = base.rstrip("/") + API + path
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as err:
            raise ModelResolutionError(
                "MlflowUnavailable", f"MLflow at {base} is unreachable: {err}"
            ) from err
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.is_success:
            return body
        code = str(body.get("error_code", ""))
        message = str(body.get("message") or response.text[:300])
        if code == "RESOURCE_DOES_NOT_EXIST" and "registered model" in message.lower():
            raise ModelResolutionError("RegisteredModelNotFound", message)
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") and not_found:
            reason, what = not_found
            raise ModelResolutionError(reason, f"{what} not found: {message}")
        if code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelResolutionError("RegisteredModelNotFound", message)
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise ModelResolutionError(
                "MlflowUnavailable", f"MLflow answered {response.status_code}: {message}"
            )
        raise ModelResolutionError(
            "MlflowRequestFailed", f"MLflow answered {response.status_code} {code}: {message}"
        )


def _ready_version(name: str, mv: dict[str, Any]) -> ResolvedModel:
    version = str(mv.get("version") or "")
    if not version:
        raise ModelResolutionError("VersionNotFound", f"MLflow named no version of {name!r}")
    status = mv.get("status", "READY")
    if status != "READY":
        raise ModelResolutionError(
            "VersionNotReady", f"version {version} of {name!r} is {status}, not READY"
        )
    return ResolvedModel(
        version=version, run_id=mv.get("run_id") or None, source=mv.get("source") or None
    )
