"""MLflow webhook verification: signature, freshness, replays."""

from __future__ import annotations

import json

import pytest
from tryon_operator.registry.handover import (
    ANNOTATION_LEADER_WEBHOOK,
    lease_annotations,
    webhook_url,
)
from tryon_operator.registry.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRejectedError,
    WebhookVerifier,
    registered_model_of,
    sign,
)
from tryon_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

SECRET = "s3cret"
NOW = 1_800_000_000.0
BODY = json.dumps({"entity": "model_version_alias", "action": "created",
                   "data": {"name": "tryon-vton", "alias": "production", "version": "7"}})


def headers(delivery="d-1", ts=NOW, body=BODY, secret=SECRET):
    stamp = str(int(ts))
    return {SIGNATURE_HEADER: sign(secret, delivery, stamp, body), DELIVERY_HEADER: delivery,
            TIMESTAMP_HEADER: stamp}


def verifier():
    return WebhookVerifier(SECRET, tolerance=300, clock=lambda: NOW)


def test_a_correctly_signed_fresh_delivery_is_accepted():
    payload = verifier().verify(headers(), BODY.encode())
    assert registered_model_of(payload) == "tryon-vton"


def test_signature_matches_mlflows_format():
    assert sign(SECRET, "d", "1", "{}").startswith("v1,")


@pytest.mark.parametrize(("hdrs", "status"), [
    (headers(secret="wrong"), 401),
    (headers(ts=NOW - 301), 401),
    (headers(ts=NOW + 301), 401),
    ({}, 400),
])
def test_bad_signature_stale_timestamp_or_missing_headers_are_rejected(hdrs, status):
    with pytest.raises(WebhookRejectedError) as err:
        verifier().verify(hdrs, BODY.encode())
    assert err.value.status == status


def test_a_tampered_body_is_rejected():
    with pytest.raises(WebhookRejectedError):
        verifier().verify(headers(), BODY.replace("7", "8").encode())


def test_a_replayed_delivery_is_rejected():
    v = verifier()
    v.verify(headers(), BODY.encode())
    with pytest.raises(WebhookRejectedError) as err:
        v.verify(headers(), BODY.encode())
    assert err.value.status == 409


@pytest.mark.parametrize(("env", "advertised"), [
    ({"TRYON_POD_IP": "10.0.0.7", "TRYON_WEBHOOK_PORT": "8081"}, "http://10.0.0.7:8081"),
    ({"TRYON_POD_IP": "10.0.0.7", "TRYON_WEBHOOK_PORT": "8443",
      "TRYON_WEBHOOK_CERT_FILE": "/tls/tls.crt"}, "https://10.0.0.7:8443"),
    ({"TRYON_POD_IP": "fd00::7", "TRYON_WEBHOOK_PORT": "8081"}, "http://[fd00::7]:8081"),
    ({"TRYON_WEBHOOK_PORT": "8081"}, None),
    ({"TRYON_POD_IP": "10.0.0.7"}, None),
])
def test_the_leader_advertises_its_receiver_on_the_lease(env, advertised):
    settings = OperatorSettings.from_env(env)
    assert webhook_url(settings) == advertised
    # the key is always there: a release removes a stale address even when there is none to give
    assert lease_annotations(settings) == {ANNOTATION_LEADER_WEBHOOK: advertised}
