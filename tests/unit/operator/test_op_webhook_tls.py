"""The webhook receiver's TLS: clear startup errors, TLS 1.2 or newer, and a renewed certificate
served from the next handshake on. Handshakes run in memory (no sockets), against the context
the receiver hands to its server."""

from __future__ import annotations

import logging
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from tryon_operator.registry.tls import ReloadingCertificate, WebhookTLSError, receiver_tls
from tryon_operator.settings import OperatorSettings

from tests.support.tls import LocalCA, ServerCert

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA.create()


@pytest.fixture
def pair(ca: LocalCA, tmp_path: Path) -> ServerCert:
    return ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")


def client_context(ca: LocalCA) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca.pem.decode())


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> ssl.SSLObject:
    """A full TLS handshake over memory BIOs; returns the client's end (raises on failure)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_end = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    server_end = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for side, end in (("client", client_end), ("server", server_end)):
            if not done[side]:
                try:
                    end.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return client_end
    raise AssertionError("handshake did not finish")


def served_serial(server: ssl.SSLContext, ca: LocalCA) -> int:
    der = handshake(server, client_context(ca)).getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def settings(**values: object) -> OperatorSettings:
    return OperatorSettings.model_validate({"webhook_port": 8081, **values})


def test_a_receiver_with_neither_tls_nor_the_http_opt_in_refuses_to_start():
    with pytest.raises(WebhookTLSError, match="TRYON_WEBHOOK_ALLOW_HTTP=true"):
        receiver_tls(settings())


def test_plain_http_is_served_only_when_the_user_opts_in():
    assert receiver_tls(settings(webhook_allow_http=True)) is None


def test_the_http_opt_in_reads_true_from_the_environment():
    env = {"TRYON_WEBHOOK_PORT": "8081", "TRYON_WEBHOOK_ALLOW_HTTP": "true"}
    assert OperatorSettings.from_env(env).webhook_allow_http is True


def test_a_certificate_without_its_key_is_a_clear_error(pair):
    with pytest.raises(WebhookTLSError, match="go together; got only TRYON_WEBHOOK_CERT_FILE"):
        receiver_tls(settings(webhook_cert_file=str(pair.cert_file)))


def test_a_missing_certificate_file_is_named_in_the_error(tmp_path, pair):
    missing = tmp_path / "nowhere.crt"
    with pytest.raises(WebhookTLSError, match=f"cannot read {missing}"):
        receiver_tls(settings(webhook_cert_file=str(missing), webhook_key_file=str(pair.key_file)))


def test_a_key_that_does_not_match_the_certificate_is_a_clear_error(ca, tmp_path, pair):
    other = ca.issue(tmp_path / "other.crt", tmp_path / "other.key")
    with pytest.raises(WebhookTLSError, match="matching private key"):
        receiver_tls(settings(webhook_cert_file=str(pair.cert_file),
                              webhook_key_file=str(other.key_file)))


def test_a_file_that_is_not_pem_is_a_clear_error(tmp_path, pair):
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(WebhookTLSError, match="not a PEM certificate chain"):
        receiver_tls(settings(webhook_cert_file=str(garbage), webhook_key_file=str(pair.key_file)))


def test_the_receiver_serves_its_certificate_to_a_client_trusting_the_ca(ca, pair):
    context = receiver_tls(settings(webhook_cert_file=str(pair.cert_file),
                                    webhook_key_file=str(pair.key_file)))
    assert context is not None
    assert served_serial(context, ca) == pair.serial


def test_tls_1_1_clients_are_refused(ca, pair):
    server = ReloadingCertificate(pair.cert_file, pair.key_file).context
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
        old.set_ciphers("ALL:@SECLEVEL=0")  # the client would take TLS 1.1 if it were offered
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        handshake(server, old)


def test_a_renewed_certificate_is_served_from_the_next_handshake(ca, pair):
    tls = ReloadingCertificate(pair.cert_file, pair.key_file)
    renewed = ca.issue(pair.cert_file, pair.key_file)
    assert served_serial(tls.context, ca) == renewed.serial
    assert served_serial(tls.context, ca) == renewed.serial
    assert tls.reloads == 1


def test_unchanged_files_are_not_loaded_again(ca, pair):
    tls = ReloadingCertificate(pair.cert_file, pair.key_file)
    for _ in range(3):
        assert served_serial(tls.context, ca) == pair.serial
    assert tls.reloads == 0


def test_a_half_written_renewal_keeps_the_previous_certificate_and_warns_once(
        ca, pair, tmp_path, caplog):
    tls = ReloadingCertificate(pair.cert_file, pair.key_file)
    other = ca.issue(tmp_path / "next.crt", tmp_path / "next.key")
    pair.cert_file.write_bytes(other.cert_file.read_bytes())  # new certificate, old key
    with caplog.at_level(logging.WARNING, logger="tryon_operator.registry.tls"):
        assert served_serial(tls.context, ca) == pair.serial
        assert served_serial(tls.context, ca) == pair.serial
    assert len([r for r in caplog.records if "keeps serving the previous" in r.message]) == 1

    pair.key_file.write_bytes(other.key_file.read_bytes())  # the renewal completes
    assert served_serial(tls.context, ca) == other.serial


def test_a_deleted_certificate_keeps_the_previous_one_serving(ca, pair):
    tls = ReloadingCertificate(pair.cert_file, pair.key_file)
    pair.cert_file.unlink()
    assert served_serial(tls.context, ca) == pair.serial
