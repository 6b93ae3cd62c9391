"""Client certificates and kubeconfigs signed by the local cluster's throwaway CA.

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


def issue_cert(pki: Path, name: str, subject: str, ext_file: str) -> None:
    """``<name>.crt``/``<name>.key`` for ``subject``, signed by ca.crt with the extensions file."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=pki)  # fmt: skip
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "3650", "-extfile", ext_file,
             "-out", f"{name}.crt", cwd=pki)  # fmt: skip


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
