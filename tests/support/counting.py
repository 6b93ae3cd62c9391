"""An API client that records every HTTP call it makes (method, URL), for tests that count."""

from __future__ import annotations

from typing import Any

from kubernetes import client, config


def counting_api_client(kubeconfig: str) -> tuple[client.ApiClient, list[tuple[str, str]]]:
    api = config.new_client_from_config(config_file=kubeconfig)
    calls: list[tuple[str, str]] = []
    original = api.rest_client.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        calls.append((method, url))
        return original(method, url, *args, **kwargs)

    api.rest_client.request = request  # type: ignore[method-assign]
    return api, calls
