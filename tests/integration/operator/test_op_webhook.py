"""Webhooks from a stock MLflow server reach the operator over https (issue 15).

This module runs its own MLflow server, set up the way docs/deploy.md tells a user to: private
addresses allowed for the in-cluster receiver, the receiver's CA in the server's certifi bundle
(webhook_mlflow.py). One webhook is registered with ``MlflowClient.create_webhook`` before any
alias moves; the operator runs with a one-hour registry poll and a five-minute resync, so a
rollout within seconds was started by MLflow's own delivery.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient
from mlflow.webhooks.delivery import _generate_hmac_signature
from tryon_operator.api.vocabulary import WEBHOOK_PATH

from tests.support.cluster import wait_for
from tests.support.servers import S3Server, free_port
from tests.support.tls import LocalCA, ServerCert

from .webhook_mlflow import WebhookMlflow, start_webhook_mlflow, wait_served

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SECRET = "webhook-secret"
ALIAS_EVENT = "model_version_alias.created"
QUIET = {"TRYON_MLFLOW_POLL_SECONDS": "3600", "TRYON_RESYNC_SECONDS": "300"}
MOVES = 3
LABEL_VERSION = "tryon.dev/model-version"


@dataclass(frozen=True)
class Hooked:
    """The module's MLflow server, the receiver's port and the webhook MLflow delivers to."""

    mlflow: WebhookMlflow
    port: int
    webhook_id: str

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def client(self) -> MlflowClient:
        uri = self.mlflow.server.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def hooked(s3_server: S3Server) -> Iterator[Hooked]:
    workdir = Path(tempfile.mkdtemp(prefix="tryon-webhook-mlflow-"))
    mlflow = start_webhook_mlflow(workdir, s3_server, LocalCA.create())
    try:
        port = free_port()
        uri = mlflow.server.tracking_uri
        webhook = MlflowClient(tracking_uri=uri, registry_uri=uri).create_webhook(
            name="tryon-operator", url=f"https://127.0.0.1:{port}{WEBHOOK_PATH}",
            events=[ALIAS_EVENT], secret=SECRET)
        yield Hooked(mlflow, port, webhook.webhook_id)
    finally:
        mlflow.server.process.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(hooked: Hooked) -> Any:
    """This module's registry and operators use the webhook-enabled server."""
    return hooked.mlflow.server


@pytest.fixture
def server_cert(hooked: Hooked, tmp_path: Path) -> ServerCert:
    return hooked.mlflow.ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")


@pytest.fixture
def tls_operator(operator_factory: Callable[..., Any], smoke: Any, hooked: Hooked,
                 server_cert: ServerCert) -> Callable[..., Any]:
    """Starts the operator with its receiver on https and waits until it handshakes."""

    def start(**env: str) -> Any:
        op = operator_factory(
            smoke.url, TRYON_WEBHOOK_PORT=str(hooked.port), TRYON_WEBHOOK_HOST="127.0.0.1",
            TRYON_WEBHOOK_SECRET=SECRET, TRYON_WEBHOOK_CERT_FILE=str(server_cert.cert_file),
            TRYON_WEBHOOK_KEY_FILE=str(server_cert.key_file), **{**QUIET, **env})
        wait_served(hooked.port, hooked.mlflow.ca_file, 60)
        return op

    return start


def https(hooked: Hooked) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(hooked.mlflow.ca_file)))


def signed(registered_model: str, *, sent: float | None = None) -> tuple[dict[str, str], bytes]:
    """A delivery built and signed the way MLflow's sender does it."""
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "timestamp": "2026-01-01T00:00:00+00:00",
                       "data": {"name": registered_model, "alias": "production", "version": "1"}})
    delivery_id, stamp = str(uuid.uuid4()), str(int(time.time() if sent is None else sent))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, stamp, body),
    }, body.encode()


def scaled(tom: Any, color: str) -> tuple[int, str | None]:
    """Replicas asked of a colour's Deployment and the version its pods run (0 before it exists)."""
    try:
        deployment = tom.deployment(color)
    except ApiException as err:
        if err.status == 404:
            return 0, None
        raise
    labels = deployment.spec.template.metadata.labels or {}
    return deployment.spec.replicas or 0, labels.get(LABEL_VERSION)


def test_alias_moves_delivered_by_mlflow_roll_out_long_before_the_next_poll(
        tls_operator, hooked, registry, create_tom, healthy_on):
    v1 = registry.add_version()
    registry.set_alias("production", v1)
    op = tls_operator()
    tom = create_tom("dress", registry.name)
    tom.wait(healthy_on(v1, "blue"), 90, "Healthy on v1")

    latencies, flips = [], []
    for _ in range(MOVES):
        active = tom.status()["activeColor"]
        idle = "green" if active == "blue" else "blue"
        wait_for(lambda idle=idle: scaled(tom, idle)[0] == 0, 30,
                 f"{idle} scaled down after the last flip")
        version = registry.add_version()
        moved = time.monotonic()
        registry.set_alias("production", version)
        wait_for(lambda idle=idle, version=version: scaled(tom, idle)[1] == version
                 and scaled(tom, idle)[0] >= 1, 20,
                 f"{idle} scaled up on v{version}", interval=0.02)
        latencies.append(time.monotonic() - moved)
        tom.wait(healthy_on(version, idle), 60, f"Healthy on v{version}")
        flips.append(time.monotonic() - moved)

    print(f"alias moved -> {MOVES} deliveries: idle colour scaled after "
          f"{', '.join(f'{s:.2f}' for s in latencies)} s; traffic flipped after "
          f"{', '.join(f'{s:.2f}' for s in flips)} s (poll 3600 s, resync 300 s)")
    assert max(latencies) < 10
    accepted = f"for {registry.name!r} accepted: 1 reconcile(s) woken"
    assert op.log_path.read_text().count(accepted) >= MOVES


def test_mlflows_own_test_delivery_is_accepted_over_https(tls_operator, hooked):
    tls_operator()
    result = hooked.client().test_webhook(hooked.webhook_id)
    assert result.success and result.response_status == 200, result


def test_a_delivery_signed_with_another_secret_is_refused(tls_operator, hooked):
    tls_operator()
    client = hooked.client()
    wrong = client.create_webhook(name="wrong-secret", url=hooked.url, events=[ALIAS_EVENT],
                                  secret="not-the-operators-secret")
    try:
        result = client.test_webhook(wrong.webhook_id)
    finally:
        client.delete_webhook(wrong.webhook_id)
    assert not result.success and result.response_status == 401, result


def test_a_replayed_delivery_is_refused(tls_operator, hooked, registry):
    tls_operator()
    headers, body = signed(registry.name)
    with https(hooked) as session:
        assert session.post(hooked.url, headers=headers, content=body).status_code == 200
        replay = session.post(hooked.url, headers=headers, content=body)
    assert replay.status_code == 409 and "replay" in replay.json()["error"]


def test_a_delivery_with_a_stale_timestamp_is_refused(tls_operator, hooked, registry):
    tls_operator()
    headers, body = signed(registry.name, sent=time.time() - 3600)
    with https(hooked) as session:
        answer = session.post(hooked.url, headers=headers, content=body)
    assert answer.status_code == 401 and "timestamp" in answer.json()["error"]


def test_a_plain_http_client_gets_no_answer_from_the_tls_port(tls_operator, hooked, registry):
    op = tls_operator()
    headers, body = signed(registry.name)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{hooked.port}{WEBHOOK_PATH}", headers=headers,
                   content=body, timeout=5)
    assert "reconcile(s) woken" not in op.log_path.read_text()


def test_a_renewed_certificate_is_served_without_a_restart(tls_operator, hooked, server_cert):
    op = tls_operator()
    assert wait_served(hooked.port, hooked.mlflow.ca_file, 5) == server_cert.serial
    pid = op.proc.pid

    renewed = hooked.mlflow.ca.issue(server_cert.cert_file, server_cert.key_file)
    assert wait_served(hooked.port, hooked.mlflow.ca_file, 5, renewed.serial) == renewed.serial
    assert hooked.client().test_webhook(hooked.webhook_id).response_status == 200
    assert op.proc.poll() is None and op.proc.pid == pid


def test_plain_http_is_served_when_the_user_opts_in(operator_factory, smoke, hooked, registry):
    operator_factory(smoke.url, TRYON_WEBHOOK_PORT=str(hooked.port), TRYON_WEBHOOK_HOST="127.0.0.1",
                     TRYON_WEBHOOK_SECRET=SECRET, TRYON_WEBHOOK_ALLOW_HTTP="true", **QUIET)
    url = f"http://127.0.0.1:{hooked.port}{WEBHOOK_PATH}"
    headers, body = signed(registry.name)

    def answered() -> int | None:
        try:
            return httpx.post(url, headers=headers, content=body, timeout=2).status_code
        except httpx.TransportError:
            return None

    assert wait_for(answered, 60, "the plain-http receiver") == 200


def test_a_receiver_without_tls_or_the_http_opt_in_stops_the_operator_with_what_to_set(
        operator_factory, smoke, hooked):
    op = operator_factory(smoke.url, TRYON_WEBHOOK_PORT=str(hooked.port),
                          TRYON_WEBHOOK_HOST="127.0.0.1", TRYON_WEBHOOK_SECRET=SECRET, **QUIET)
    wait_for(lambda: op.proc.poll() is not None, 60, "the operator to exit")
    assert op.proc.returncode != 0
    assert "TRYON_WEBHOOK_CERT_FILE and TRYON_WEBHOOK_KEY_FILE" in op.log_path.read_text()
    assert "TRYON_WEBHOOK_ALLOW_HTTP=true" in op.log_path.read_text()
