"""The local image registry: CNCF Distribution with TLS and htpasswd auth on loopback, from which
the real node's containerd pulls the project's images, as a private registry serves its cluster.

``make images`` pushes both images to it (tag: the 12-character commit), ``make cluster-up``
starts it, and pods pull with a ``kubernetes.io/dockerconfigjson`` Secret. Its storage, CA and
password live in the tool cache (``~/.cache/tryon-operator/registry``), so they survive
``cluster-down``; ``cluster-down`` stops the process only.

    python3 hack/localcluster/registry.py up|down|status|tag|ref NAME|pushed NAME DIGEST

Standard library only: ``hack/images/build.sh`` calls it with the host's python3.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HOST = "127.0.0.1"
PORT = int(os.environ.get("TRYON_REGISTRY_PORT", "5443"))
ADDRESS = f"{HOST}:{PORT}"
REPOSITORY = f"{ADDRESS}/tryon"
USER = "tryon"
IMAGE_NAMES = ("tryon-operator", "tryon-renderer")
PULL_SECRET = "tryon-registry"
USAGE = "usage: registry.py up|down|status|tag|ref NAME|pushed NAME DIGEST"
# What the images are built from (hack/images/build.sh's context): a change here means a new image.
IMAGE_CONTEXT = (
    "pyproject.toml",
    "README.md",
    "operator",
    "renderer",
    "training",
    "hack/requirements-from-pyproject.py",
    "Dockerfile",
    ".dockerignore",
)


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class RegistryPaths:
    """Everything the registry keeps, under one directory that outlives the cluster."""

    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pki(self) -> Path:
        return self.home / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def trust_dir(self) -> Path:
        """Only the CA: what ``buildah push --cert-dir`` and containerd's hosts.toml trust."""
        return self.home / "trust"

    @property
    def password(self) -> Path:
        return self.home / "password"

    @property
    def htpasswd(self) -> Path:
        return self.home / "htpasswd"

    @property
    def auth_json(self) -> Path:
        """Docker config JSON with the credentials, for ``buildah push --authfile``."""
        return self.home / "auth.json"

    @property
    def config(self) -> Path:
        return self.home / "config.yml"

    @property
    def pid(self) -> Path:
        return self.home / "registry.pid"

    @property
    def log(self) -> Path:
        return self.home / "registry.log"


def registry_paths() -> RegistryPaths:
    default = Path.home() / ".cache" / "tryon-operator" / "registry"
    return RegistryPaths(Path(os.environ.get("TRYON_REGISTRY_HOME", default)))


# ---------------------------------------------------------------------------- image names


def image_tag() -> str:
    """The 12-character commit of HEAD; ``-dirty`` when the image context has uncommitted edits
    (such a tag is mutable, so pods pull it ``Always``)."""
    head = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = _git("status", "--porcelain", "--", *IMAGE_CONTEXT)
    return f"{head}-dirty" if changed else head


def image(name: str, tag: str | None = None) -> str:
    return f"{REPOSITORY}/{name}:{tag or image_tag()}"


def pull_policy(tag: str) -> str:
    """A commit tag never changes what it names; a ``-dirty`` one does."""
    return "Always" if tag.endswith("-dirty") else "IfNotPresent"


def _git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "--no-optional-locks", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


# ---------------------------------------------------------------------------- credentials


def password(paths: RegistryPaths | None = None) -> str:
    paths = paths or registry_paths()
    if not paths.password.exists():
        raise RegistryError(f"no registry password at {paths.password}: run `make images` first")
    return paths.password.read_text().strip()


def docker_config(user: str, secret: str) -> dict[str, Any]:
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"auths": {ADDRESS: {"username": user, "password": secret, "auth": token}}}


def pull_secret_manifest(
    namespace: str, name: str = PULL_SECRET, secret: str | None = None
) -> dict[str, Any]:
    """The ``kubernetes.io/dockerconfigjson`` Secret pods name in ``imagePullSecrets``."""
    config = docker_config(USER, password() if secret is None else secret)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json.dumps(config)},
    }


def hosts_toml(paths: RegistryPaths) -> str:
    """containerd's ``certs.d/<host:port>/hosts.toml``: TLS to the registry with its own CA."""
    return (
        f'server = "https://{ADDRESS}"\n\n'
        f'[host."https://{ADDRESS}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f"  ca = {json.dumps(str(paths.ca_cert))}\n"
    )


KEEP_IMAGES = 2  # distinct images kept per repository: the one pushed last and the one before


def _api(path: str, method: str = "GET", data: bytes | None = None, **headers: str) -> Any:
    """One authenticated request to the registry's API; the open response."""
    paths = registry_paths()
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    token = base64.b64encode(f"{USER}:{password(paths)}".encode()).decode()
    request = urllib.request.Request(
        f"https://{ADDRESS}/v2/{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Basic {token}", **headers},
    )
    return urllib.request.urlopen(request, timeout=30, context=context)


def record_push(name: str, digest: str) -> list[str]:
    """Notes that ``digest`` was pushed to ``name``, then deletes the manifests of images older
    than the last ``KEEP_IMAGES`` and collects their blobs (a renderer image is 3.2 GB here)."""
    paths = registry_paths()
    history_file = paths.home / "pushed.json"
    history = json.loads(history_file.read_text()) if history_file.exists() else {}
    kept = [digest, *[d for d in history.get(name, []) if d != digest]][:KEEP_IMAGES]
    history[name] = kept
    history_file.write_text(json.dumps(history, indent=1) + "\n")
    with _api(f"tryon/{name}/tags/list") as answer:
        tags = json.loads(answer.read()).get("tags") or []
    old: set[str] = set()
    for tag in tags:
        accept = "application/vnd.oci.image.manifest.v1+json"
        with _api(f"tryon/{name}/manifests/{tag}", method="HEAD", Accept=accept) as answer:
            found = answer.headers.get("Docker-Content-Digest", "")
        if found and found not in kept:
            old.add(found)
    for found in sorted(old):
        _api(f"tryon/{name}/manifests/{found}", method="DELETE").close()
    if old:
        collect_garbage(paths)
    return sorted(old)


def collect_garbage(paths: RegistryPaths) -> None:
    """Removes blobs no manifest names; the registry must not serve while it runs."""
    running = _running_pid(paths) is not None
    if running:
        down()
    tools = tool_dir()
    subprocess.run(
        [str(tools / "registry"), "garbage-collect", "--delete-untagged", str(paths.config)],
        check=True,
        capture_output=True,
    )
    if running:
        up()


def manifest_digest(name: str, tag: str) -> str | None:
    """The digest the registry has for ``name:tag`` (None: no such tag, or no registry)."""
    accept = "application/vnd.oci.image.manifest.v1+json"
    try:
        with _api(f"tryon/{name}/manifests/{tag}", method="HEAD", Accept=accept) as answer:
            return answer.headers.get("Docker-Content-Digest") or None
    except (OSError, RegistryError):  # HTTPError (404) is an OSError
        return None


def retag(name: str, source_tag: str, new_tag: str) -> None:
    """Points ``new_tag`` at the manifest ``source_tag`` names (no blob moves): an image the
    node has not pulled yet, for tests of what a pull does."""
    media = "application/vnd.oci.image.manifest.v1+json"
    with _api(f"tryon/{name}/manifests/{source_tag}", Accept=media) as answer:
        manifest, kind = answer.read(), answer.headers.get("Content-Type", media)
    path = f"tryon/{name}/manifests/{new_tag}"
    _api(path, method="PUT", data=manifest, **{"Content-Type": kind}).close()


# ---------------------------------------------------------------------------- set-up


def _openssl(paths: RegistryPaths, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=paths.pki, check=True, capture_output=True)


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def ensure_identity(paths: RegistryPaths, htpasswd_tool: Path) -> None:
    """A CA and a serving certificate for the loopback address, a password and its bcrypt
    htpasswd line, and the push credentials: made once, kept with the storage."""
    paths.pki.mkdir(parents=True, exist_ok=True)
    if not (paths.pki / "tls.crt").exists():
        _openssl(paths, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-keyout", "ca.key", "-out", "ca.crt",
                 "-subj", "/CN=tryon-registry-ca")  # fmt: skip
        (paths.pki / "tls.ext").write_text(
            f"subjectAltName=IP:{HOST},DNS:localhost\nextendedKeyUsage=serverAuth\n"
        )
        _openssl(paths, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key",
                 "-out", "tls.csr", "-subj", "/CN=tryon-registry")  # fmt: skip
        _openssl(paths, "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3650", "-extfile", "tls.ext",
                 "-out", "tls.crt")  # fmt: skip
    paths.trust_dir.mkdir(parents=True, exist_ok=True)
    (paths.trust_dir / "ca.crt").write_bytes(paths.ca_cert.read_bytes())
    if not paths.password.exists():
        _write_private(paths.password, secrets.token_urlsafe(24) + "\n")
    secret = password(paths)
    if not paths.htpasswd.exists():
        line = subprocess.run(
            [str(htpasswd_tool), USER], input=secret + "\n", capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        _write_private(paths.htpasswd, line)
    _write_private(paths.auth_json, json.dumps(docker_config(USER, secret)) + "\n")
    paths.config.write_text(config_yaml(paths))


def config_yaml(paths: RegistryPaths) -> str:
    """Filesystem storage, deletes allowed (so old tags can be collected), htpasswd, TLS."""
    return f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {json.dumps(str(paths.data))}
  delete:
    enabled: true
http:
  addr: {ADDRESS}
  tls:
    certificate: {json.dumps(str(paths.pki / "tls.crt"))}
    key: {json.dumps(str(paths.pki / "tls.key"))}
auth:
  htpasswd:
    realm: tryon-registry
    path: {json.dumps(str(paths.htpasswd))}
"""


def tool_dir() -> Path:
    """The registry and htpasswd binaries, built once into the tool cache."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-tools.sh"), "registry"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.split()
    found = [Path(line) for line in out if Path(line).name.startswith("registry-")]
    if not found:
        raise RegistryError(f"hack/build-tools.sh printed no registry directory: {out}")
    return found[0]


# ---------------------------------------------------------------------------- process


def answering(paths: RegistryPaths, timeout: float = 2.0) -> bool:
    """The registry answers ``/v2/`` over TLS with our CA and asks for credentials (401)."""
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    try:
        urllib.request.urlopen(f"https://{ADDRESS}/v2/", timeout=timeout, context=context)
    except urllib.error.HTTPError as err:
        return err.code == 401
    except (OSError, ssl.SSLError):
        return False
    return False  # a 200 without credentials: not our registry (auth off)


@contextlib.contextmanager
def _locked(paths: RegistryPaths) -> Iterator[None]:
    paths.home.mkdir(parents=True, exist_ok=True)
    with (paths.home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _running_pid(paths: RegistryPaths) -> int | None:
    try:
        pid = int(paths.pid.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if any(part.endswith(b"/registry") for part in cmdline[:1]) else None


def up(timeout: float = 20.0) -> RegistryPaths:
    """Starts the registry unless ours already answers; returns its paths."""
    paths = registry_paths()
    with _locked(paths):
        if paths.ca_cert.exists() and answering(paths):
            return paths
        tools = tool_dir()
        ensure_identity(paths, tools / "htpasswd")
        if _running_pid(paths) is None:
            with paths.log.open("ab") as log:
                proc = subprocess.Popen(
                    [str(tools / "registry"), "serve", str(paths.config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            paths.pid.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while not answering(paths):
            if time.monotonic() > deadline:
                tail = paths.log.read_text(errors="replace")[-2000:] if paths.log.exists() else ""
                raise RegistryError(f"the registry did not answer on {ADDRESS}:\n{tail}")
            time.sleep(0.2)
    return paths


def down() -> bool:
    """Stops our registry process (storage, CA and password stay); True if one was running."""
    paths = registry_paths()
    with _locked(paths):
        pid = _running_pid(paths)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _running_pid(paths) == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running_pid(paths) == pid:
            os.kill(pid, signal.SIGKILL)
        paths.pid.unlink(missing_ok=True)
        return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command == "up":
        paths = up()
        print(f"registry: https://{ADDRESS} (user {USER}; storage {paths.data})")
    elif command == "down":
        print("registry: stopped" if down() else "registry: not running")
    elif command == "status":
        paths = registry_paths()
        alive = paths.ca_cert.exists() and answering(paths)
        print(f"registry: {'answering' if alive else 'down'} on {ADDRESS}")
        return 0 if alive else 1
    elif command == "tag":
        print(image_tag())
    elif command == "ref" and len(args) == 2:
        print(image(args[1]))
    elif command == "pushed" and len(args) == 3:
        removed = record_push(args[1], args[2])
        print(f"registry: kept the last {KEEP_IMAGES} images of {args[1]}; removed {len(removed)}")
    else:
        print(USAGE, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
