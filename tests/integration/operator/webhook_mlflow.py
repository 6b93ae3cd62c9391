"""A stock MLflow server that can deliver registry webhooks to the operator on loopback over https.

Two MLflow rules stand in the way, as for any user (docs/deploy.md#mlflow-webhooks):

- it refuses webhook URLs on private addresses unless ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true``;
- its sender's requests session has ``trust_env=False``, so ``REQUESTS_CA_BUNDLE`` is ignored and
  the receiver's certificate is checked against certifi's ``cacert.pem`` in the server's own
  environment. A user adds the private CA to that bundle in the MLflow image; here the server gets
  a copy of the installed certifi package with the test CA appended, first on its ``PYTHONPATH``,
  and the shared virtual environment stays untouched.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509

from tests.support.servers import MlflowServer, S3Server, start_mlflow_server
from tests.support.tls import LocalCA


def certifi_trusting(ca: LocalCA, root: Path) -> Path:
    """A directory for ``PYTHONPATH`` whose ``certifi`` bundle also trusts ``ca``."""
    package = root / "certifi"
    shutil.copytree(Path(certifi.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__", "tests"))
    with (package / "cacert.pem").open("ab") as bundle:
        bundle.write(b"\n# tryon test CA\n" + ca.pem)
    return root


@dataclass(frozen=True)
class WebhookMlflow:
    server: MlflowServer
    ca: LocalCA
    ca_file: Path


def start_webhook_mlflow(workdir: Path, s3: S3Server, ca: LocalCA) -> WebhookMlflow:
    """MLflow as a user would run it for an in-cluster receiver with a private CA.

    Each delivery is sent once (no retries), so a rollout that follows within seconds was caused
    by the delivery of that very move, not by a retried earlier one.
    """
    trust = certifi_trusting(ca, workdir / "trust")
    server = start_mlflow_server(workdir, s3, extra_env={
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "PYTHONPATH": str(trust),
        "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_WEBHOOK_REQUEST_TIMEOUT": "5",
    })
    return WebhookMlflow(server, ca, ca.write(workdir / "ca.crt"))


def served_serial(port: int, ca_file: Path, timeout: float = 2.0) -> int | None:
    """Serial number of the certificate a TLS handshake on 127.0.0.1:``port`` shows; ``None``
    while nothing listens there yet."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    except (ConnectionRefusedError, ConnectionResetError, TimeoutError):
        return None
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def wait_served(port: int, ca_file: Path, timeout: float, serial: int | None = None) -> int:
    """Waits until the receiver answers TLS handshakes (with certificate ``serial`` if given)."""
    deadline = time.monotonic() + timeout
    seen: int | None = None
    while time.monotonic() < deadline:
        seen = served_serial(port, ca_file)
        if seen is not None and (serial is None or seen == serial):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"receiver on {port} did not serve {serial or 'TLS'} (last: {seen})")
