"""A signed MLflow registry webhook makes the operator reconcile at once (polling stays the source
of truth); forged or replayed deliveries are refused."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SECRET = "webhook-secret"


def delivery(name: str, version: str, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as MLflow's webhook sender builds them."""
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": "2026-01-01T00:00:00+00:00",
                       "data": {"name": name, "alias": "production", "version": version}})
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, stamp, body),
    }, body.encode()


def test_signed_webhook_triggers_the_rollout_long_before_the_next_poll(
        operator_factory, registry, create_tom, smoke, healthy_on):
    v1, v2 = registry.add_version(), registry.add_version()
    registry.set_alias("production", v1)
    port = free_port()
    operator_factory(smoke.url, TRYON_MLFLOW_POLL_SECONDS="3600", TRYON_WEBHOOK_PORT=str(port),
                     TRYON_WEBHOOK_HOST="127.0.0.1", TRYON_WEBHOOK_SECRET=SECRET)
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 60, "Healthy on v1")
    url = f"http://127.0.0.1:{port}/webhooks/mlflow"
    registry.set_alias("production", v2)

    forged_headers, forged_body = delivery(registry.name, v2, secret="wrong")
    assert httpx.post(url, headers=forged_headers, content=forged_body).status_code == 401

    headers, body = delivery(registry.name, v2)
    answer = httpx.post(url, headers=headers, content=body)
    assert answer.status_code == 200 and answer.json()["triggered"] == 1
    assert httpx.post(url, headers=headers, content=body).status_code == 409  # replay

    tom.wait(healthy_on(v2, "green"), 30, "v2 promoted after the webhook")
