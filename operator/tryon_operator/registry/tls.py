"""HTTPS for the MLflow webhook receiver.

MLflow sends webhooks over https only, so the receiver serves TLS 1.2+ from a PEM certificate
chain and key (``TRYON_WEBHOOK_CERT_FILE`` / ``TRYON_WEBHOOK_KEY_FILE``, a mounted
``kubernetes.io/tls`` Secret in the chart). cert-manager renews that Secret in place; every
handshake looks at the two files (a ``stat`` each) and a changed pair is loaded into a fresh
context for that and later handshakes, so no restart is needed. A pair that does not load (a
half-written renewal) leaves the previous certificate serving. Plain http is refused unless the
user opts in with ``TRYON_WEBHOOK_ALLOW_HTTP=true``.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from ..settings import OperatorSettings

log = logging.getLogger(__name__)

MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2

Fingerprint = tuple[int, ...]


class WebhookTLSError(ValueError):
    """The receiver's TLS settings or files cannot be used; the operator stops with this message
    (startup turns a ValueError into kopf's PermanentError)."""


def load_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context (TLS 1.2 or newer) holding the chain in ``cert_file`` and its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_TLS_VERSION
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as err:
        raise WebhookTLSError(
            f"webhook TLS: {cert_file} and {key_file} are not a PEM certificate chain and its "
            f"matching private key ({err.reason or err})"
        ) from err
    except OSError as err:
        raise WebhookTLSError(
            f"webhook TLS: cannot read {err.filename or cert_file}: {err.strerror or err}"
        ) from err
    return context


def fingerprint(cert_file: Path, key_file: Path) -> Fingerprint:
    """Identity of the files' current contents; ``stat`` follows the Secret volume's symlinks."""
    parts: list[int] = []
    for path in (cert_file, key_file):
        st = path.stat()
        parts += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    return tuple(parts)


class ReloadingCertificate:
    """A server context whose certificate follows the files on disk, checked at each handshake.

    ``context`` is the one to give the server; its SNI callback (which OpenSSL calls for every
    ClientHello, with or without a server name) moves the connection onto the newest loaded
    context. Connections already established keep the certificate they were opened with.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.reloads = 0
        self._seen = self._stat_or_raise()
        self._current = load_context(cert_file, key_file)
        self._warned: str | None = None
        self.context = self._current
        self.context.sni_callback = self._on_client_hello

    def _stat_or_raise(self) -> Fingerprint:
        try:
            return fingerprint(self.cert_file, self.key_file)
        except OSError as err:
            raise WebhookTLSError(
                f"webhook TLS: cannot read {err.filename}: {err.strerror or err}"
            ) from err

    def current(self) -> ssl.SSLContext:
        """The context for a new handshake: reloaded when the files changed since last time."""
        try:
            seen = fingerprint(self.cert_file, self.key_file)
        except OSError as err:
            return self._keep(f"webhook TLS: cannot read {err.filename}: {err.strerror or err}")
        if seen == self._seen:
            return self._current
        try:
            fresh = load_context(self.cert_file, self.key_file)
        except WebhookTLSError as err:
            return self._keep(str(err))
        self._current, self._seen, self._warned = fresh, seen, None
        self.reloads += 1
        log.info("webhook TLS: loaded the renewed certificate from %s", self.cert_file)
        return fresh

    def _keep(self, why: str) -> ssl.SSLContext:
        """Keeps serving the last good certificate; says why once, not at every handshake."""
        if why != self._warned:
            log.warning("%s; the receiver keeps serving the previous certificate", why)
            self._warned = why
        return self._current

    def _on_client_hello(
        self, connection: ssl.SSLSocket | ssl.SSLObject, _server_name: str | None, _: ssl.SSLContext
    ) -> None:
        newest = self.current()
        if newest is not connection.context:
            connection.context = newest


def receiver_tls(settings: OperatorSettings) -> ssl.SSLContext | None:
    """The receiver's server context, or ``None`` for plain http when the user opted in.

    Raises ``WebhookTLSError`` (the operator stops at startup) for half-set, unreadable or
    mismatched files, and when neither TLS nor plain http was asked for.
    """
    cert, key = settings.webhook_cert_file, settings.webhook_key_file
    if bool(cert) != bool(key):
        raise WebhookTLSError(
            "webhook TLS: TRYON_WEBHOOK_CERT_FILE and TRYON_WEBHOOK_KEY_FILE go together; "
            f"got only {'TRYON_WEBHOOK_CERT_FILE' if cert else 'TRYON_WEBHOOK_KEY_FILE'}"
        )
    if cert and key:
        return ReloadingCertificate(Path(cert), Path(key)).context
    if settings.webhook_allow_http:
        log.warning(
            "webhook receiver serves plain http (TRYON_WEBHOOK_ALLOW_HTTP=true): a stock MLflow "
            "server only sends https, so put a TLS-terminating proxy in front of it"
        )
        return None
    raise WebhookTLSError(
        "the webhook receiver (TRYON_WEBHOOK_PORT) serves https only: set "
        "TRYON_WEBHOOK_CERT_FILE and TRYON_WEBHOOK_KEY_FILE to a PEM certificate and key, or "
        "set TRYON_WEBHOOK_ALLOW_HTTP=true to serve plain http behind your own TLS proxy"
    )
