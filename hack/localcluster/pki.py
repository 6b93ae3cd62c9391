"""The local cluster's throwaway CA, and the certificates and kubeconfigs it signs.

Each host component of the real node (kubelet, kube-proxy, cluster DNS) gets its own identity,
so RBAC grants it only what its role needs instead of sharing the admin certificate.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue_cert(pki: Path, name: str, subject: str, ext_file: str, ca: str = "ca") -> None:
    """``<name>.crt``/``<name>.key`` for ``subject``, signed by ``<ca>.crt`` with the extensions
    file."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=pki)  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "3650", "-extfile", ext_file,
             "-out", f"{name}.crt", cwd=pki)  # fmt: skip


def make_ca(pki: Path, name: str, common_name: str) -> None:
    """A self-signed CA ``<name>.crt``/``<name>.key``, made once."""
    if (pki / f"{name}.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={common_name}",
            cwd=pki)  # fmt: skip


# The API server's aggregation layer: it proxies /apis/<group> of an APIService (KEDA's
# external.metrics.k8s.io) with this client certificate and the caller's identity in the
# X-Remote-* headers; extension API servers trust those headers only from a certificate this CA
# signed with this name (kube-system/extension-apiserver-authentication tells them both).
FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"


def make_front_proxy_certs(pki: Path) -> None:
    """The front-proxy CA (separate from the cluster CA, as kubeadm does) and the aggregator's
    client certificate, made once."""
    if (pki / f"{FRONT_PROXY_CLIENT}.crt").exists():
        return
    make_ca(pki, FRONT_PROXY_CA, "tryon-local-front-proxy-ca")
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    issue_cert(pki, FRONT_PROXY_CLIENT, f"/CN={FRONT_PROXY_CLIENT}", "client.ext", FRONT_PROXY_CA)


def make_cluster_pki(pki: Path, node_ip: str) -> None:
    """The control plane's: a throwaway CA, the API server's serving certificate (also valid for
    ``node_ip``, the address pods reach it on), an admin client certificate, a service-account key
    and the aggregation layer's front-proxy certificates."""
    if (pki / "admin.crt").exists():
        make_front_proxy_certs(pki)  # a state dir made before these existed
        return
    make_ca(pki, "ca", "tryon-local-ca")
    (pki / "san.ext").write_text(
        f"subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:{node_ip},DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", "san.ext"),
        ("admin", "/O=system:masters/CN=tryon-admin", "client.ext"),
    ):
        issue_cert(pki, name, subject, ext)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    make_front_proxy_certs(pki)


def issue_client_cert(pki: Path, name: str, subject: str) -> None:
    """A client certificate for ``subject`` (``/O=group/CN=user``), issued once."""
    if (pki / f"{name}.crt").exists():
        return
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    issue_cert(pki, name, subject, "client.ext")


def write_kubeconfig(path: Path, server: str, pki: Path, cert: str = "admin") -> None:
    """A kubeconfig for ``cert`` with everything inline, so it can be copied anywhere."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tryon-local",
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"tryon-{cert}",
                "user": {
                    "client-certificate-data": b64(f"{cert}.crt"),
                    "client-key-data": b64(f"{cert}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "tryon-local", "context": {"cluster": "tryon-local", "user": f"tryon-{cert}"}}
        ],
        "current-context": "tryon-local",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
