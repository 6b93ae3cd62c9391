"""`helm template` for the webhook receiver's TLS: a kubernetes.io/tls Secret mounted read-only,
an optional cert-manager Certificate, and plain http only when asked for."""

from __future__ import annotations

import pytest

from tests.integration.chart.conftest import CHART, KUBE_VERSION, Helm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WEBHOOK = ("--set", "webhook.enabled=true", "--set", "webhook.secret.name=hooks")
TLS_DIR = "/etc/tryon/webhook-tls"


def _pod(objects: list[dict]) -> dict:
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def _env(objects: list[dict]) -> dict[str, dict]:
    (container,) = _pod(objects)["containers"]
    return {e["name"]: e for e in container["env"]}


def _certificates(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] == "Certificate"]


def _refused(helm: Helm, *flags: str) -> str:
    result = helm.run("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *flags,
                      check=False)
    assert result.returncode != 0, f"{flags} was accepted"
    return str(result.stderr)


def test_a_webhook_without_tls_or_the_http_opt_in_is_refused(helm: Helm) -> None:
    stderr = _refused(helm, *WEBHOOK)
    assert "webhook.tls.secretName" in stderr and "webhook.allowHttp=true" in stderr


def test_the_tls_secret_is_mounted_read_only_and_handed_to_the_receiver(helm: Helm) -> None:
    objects = helm.template(*WEBHOOK, "--set", "webhook.tls.secretName=hooks-tls")
    pod = _pod(objects)
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == "hooks-tls"
    assert {i["key"] for i in volume["secret"]["items"]} == {"tls.crt", "tls.key"}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": TLS_DIR, "readOnly": True}  # no subPath
    env = _env(objects)
    assert env["TRYON_WEBHOOK_CERT_FILE"]["value"] == f"{TLS_DIR}/tls.crt"
    assert env["TRYON_WEBHOOK_KEY_FILE"]["value"] == f"{TLS_DIR}/tls.key"
    assert "TRYON_WEBHOOK_ALLOW_HTTP" not in env


def test_plain_http_is_rendered_only_with_the_opt_in(helm: Helm) -> None:
    objects = helm.template(*WEBHOOK, "--set", "webhook.allowHttp=true")
    env = _env(objects)
    assert env["TRYON_WEBHOOK_ALLOW_HTTP"]["value"] == "true"
    assert "TRYON_WEBHOOK_CERT_FILE" not in env
    assert not [v for v in _pod(objects)["volumes"] if "secret" in v]


def test_the_rendered_tls_env_is_read_by_the_operator_settings(helm: Helm) -> None:
    from tryon_operator.settings import OperatorSettings

    env = _env(helm.template(*WEBHOOK, "--set", "webhook.tls.secretName=hooks-tls"))
    settings = OperatorSettings.from_env(
        {k: v.get("value", "from-a-secret") for k, v in env.items() if k.startswith("TRYON_")})
    assert settings.webhook_cert_file == f"{TLS_DIR}/tls.crt"
    assert settings.webhook_key_file == f"{TLS_DIR}/tls.key"
    assert settings.webhook_allow_http is False


def test_no_certificate_is_created_unless_asked(helm: Helm) -> None:
    assert not _certificates(helm.template(*WEBHOOK, "--set", "webhook.tls.secretName=hooks-tls"))
    assert not _certificates(helm.template(
        "--set", "webhook.tls.certManager.enabled=true",
        "--set", "webhook.tls.certManager.issuerRef.name=ca"))  # the receiver itself is off


def test_cert_manager_signs_the_services_names_into_the_mounted_secret(helm: Helm) -> None:
    objects = helm.template(*WEBHOOK, "--set", "webhook.tls.certManager.enabled=true",
                            "--set", "webhook.tls.certManager.issuerRef.name=internal-ca",
                            "--set", "webhook.tls.certManager.issuerRef.kind=ClusterIssuer",
                            "--set", "webhook.tls.certManager.dnsNames={hooks.example.com}")
    (certificate,) = _certificates(objects)
    spec = certificate["spec"]
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["metadata"]["namespace"] == "ops"
    assert spec["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer",
                                 "group": "cert-manager.io"}
    (service,) = [o for o in objects if o["kind"] == "Service"]
    name = service["metadata"]["name"]
    assert {f"{name}.ops.svc", f"{name}.ops.svc.cluster.local", "hooks.example.com"} <= set(
        spec["dnsNames"])
    assert "server auth" in spec["usages"]
    (volume,) = [v for v in _pod(objects)["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == spec["secretName"]


def test_cert_manager_writes_the_named_secret_when_one_is_given(helm: Helm) -> None:
    objects = helm.template(*WEBHOOK, "--set", "webhook.tls.secretName=hooks-tls",
                            "--set", "webhook.tls.certManager.enabled=true",
                            "--set", "webhook.tls.certManager.issuerRef.name=internal-ca")
    (certificate,) = _certificates(objects)
    assert certificate["spec"]["secretName"] == "hooks-tls"


def test_cert_manager_without_an_issuer_is_refused(helm: Helm) -> None:
    stderr = _refused(helm, *WEBHOOK, "--set", "webhook.tls.certManager.enabled=true")
    assert "webhook.tls.certManager.issuerRef.name" in stderr


def test_the_schema_refuses_a_certificate_duration_cert_manager_cannot_parse(helm: Helm) -> None:
    stderr = _refused(helm, *WEBHOOK, "--set", "webhook.tls.secretName=hooks-tls",
                      "--set", "webhook.tls.certManager.duration=90d")
    assert "webhook/tls/certManager/duration" in stderr
