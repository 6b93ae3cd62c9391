"""Real S3 (seaweedfs) and MLflow servers on loopback, for tests, the demo and the benchmarks.

Why real servers: SigV4 signing, presigned URLs, path-style addressing and the MLflow registry
REST semantics are exactly what breaks in production, and fakes do not reproduce them.

Both servers bind to 127.0.0.1 on free ports (or to the real node's bridge address when pods must
reach them, ``host=``), keep their logs in files under their work dir
(printed when startup fails) and are stopped by their callers (pytest finalizers, the demo's exit
stack). Readiness is polled with deadlines.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .procs import free_port, free_ports

_BIN_DIR = Path(sys.executable).parent
S3_START_TIMEOUT_S = 90.0
# A port chosen free can be taken before the server binds it; a start that dies of that is retried.
S3_START_ATTEMPTS = 3
WEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
MLFLOW_START_TIMEOUT_S = 180.0
MLFLOW_ARTIFACT_BUCKET = "mlflow-artifacts"


def _find_binary(name: str) -> str:
    """Prefer the binary next to the running interpreter (the venv), then PATH."""
    candidate = _BIN_DIR / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name!r} not found next to {sys.executable} nor on PATH")
    return found


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET url answers with any HTTP status below 500 (the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status) < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (OSError, ValueError):
        return False


class ProcessExitedEarlyError(RuntimeError):
    """The server process died before it became ready (its log tail is in the message)."""


@dataclass
class ManagedProcess:
    """A child process started in its own session so the whole group can be stopped."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        """Spawn the process with stdout+stderr appended to its log file."""
        if self.running():
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool], timeout_s: float) -> None:
        """Poll probe() until it is true; fail with the log tail on exit or deadline."""
        deadline = time.monotonic() + timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            if not self.running():
                raise ProcessExitedEarlyError(f"{self.name} exited early\n{self.log_tail()}")
            if probe():
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group, escalate to SIGKILL after timeout_s."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        # Stray grandchildren (e.g. uvicorn workers) may outlive the leader.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, max_chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"<no log at {self.log_path}>"
        return f"--- {self.name} log ({self.log_path}) ---\n{text[-max_chars:]}"


@dataclass
class S3Server:
    """A running seaweedfs S3 endpoint; clients use SigV4 and path-style addressing."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    process: ManagedProcess

    def client(self) -> Any:
        """A boto3 S3 client bound to this server (s3v4 signatures, path-style)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def create_bucket(self, name: str) -> None:
        """Create a bucket; creating one that already exists is not an error."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }


def _clean_env() -> dict[str, str]:
    """The parent env minus proxies and AWS settings that could leak into test servers."""
    env = dict(os.environ)
    for key in list(env):
        if key.lower().endswith("_proxy") or key.startswith(("AWS_", "MLFLOW_")):
            env.pop(key)
    env["NO_PROXY"] = "127.0.0.1,localhost,10.85.0.1"
    return env


def _weed_argv(
    data_dir: Path, config_path: Path, ports: dict[str, int], host: str = "127.0.0.1"
) -> list[str]:
    """Command line for `weed mini` with every listener pinned to ``host`` and a free port."""
    argv = [
        _find_binary("weed"),
        "mini",
        f"-ip={host}",
        f"-ip.bind={host}",
        "-master.telemetry=false",
        f"-dir={data_dir}",
        f"-s3.config={config_path}",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        # A fixed volume count: the automatic one is free disk / volume size *at start*, which
        # leaves no writable volume when the disk is briefly full (an image build running).
        "-volume.max=50",
    ]
    argv += [f"-{flag}={port}" for flag, port in ports.items()]
    return argv


def _weed_ports(host: str) -> dict[str, int]:
    """One free port on ``host`` for every listener `weed mini` opens."""
    flags = [f"{comp}.{kind}" for comp in WEED_COMPONENTS for kind in ("port", "port.grpc")]
    flags.append("debug.port")
    return dict(zip(flags, free_ports(len(flags), host), strict=True))


def start_s3_server(workdir: Path, host: str = "127.0.0.1") -> S3Server:
    """Start seaweedfs `weed mini` with one static identity and wait until S3 answers.

    A start that exits early is retried on fresh ports (up to ``S3_START_ATTEMPTS``): the
    ports are free when chosen, but nothing reserves them until `weed` binds.
    """
    access_key, secret_key = "tryon-test-access", "tryon-test-secret-0123456789"
    config_path = workdir / "s3.json"
    identity = {
        "name": "tests",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config_path.write_text(json.dumps({"identities": [identity]}))
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, S3_START_ATTEMPTS + 1):
        ports = _weed_ports(host)
        proc = ManagedProcess(
            name="seaweedfs",
            argv=_weed_argv(data_dir, config_path, ports, host),
            env=_clean_env(),
            log_path=workdir / "weed.log",
            cwd=workdir,
        )
        server = S3Server(
            endpoint_url=f"http://{host}:{ports['s3.port']}",
            access_key=access_key,
            secret_key=secret_key,
            region="us-east-1",
            process=proc,
        )
        proc.start()
        try:
            proc.wait_ready(functools.partial(_s3_ready, server), S3_START_TIMEOUT_S)
        except ProcessExitedEarlyError:
            proc.stop()
            if attempt == S3_START_ATTEMPTS:
                raise
            print(f"seaweedfs exited early (attempt {attempt}); new ports", file=sys.stderr)
            continue
        except BaseException:
            proc.stop()
            raise
        return server
    raise AssertionError("unreachable: the last attempt returns or raises")


def _s3_ready(server: S3Server) -> bool:
    """S3 is ready when a signed ListBuckets succeeds and a bucket can be written to."""
    if not _http_ok(server.endpoint_url):
        return False
    try:
        client = server.client()
        client.list_buckets()
        client.create_bucket(Bucket="readiness-probe")
        client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
        return True
    except Exception:
        return False


@dataclass
class MlflowServer:
    """A running MLflow tracking server (sqlite backend) whose artifacts live in seaweedfs."""

    tracking_uri: str
    env: dict[str, str]
    process: ManagedProcess
    artifact_root: str

    def start(self) -> None:
        """(Re)start on the same port and data; blocks until /health answers."""
        self.process.start()
        self.process.wait_ready(
            lambda: _http_ok(f"{self.tracking_uri}/health"), MLFLOW_START_TIMEOUT_S
        )

    def stop(self) -> None:
        """Stop the server and wait until its port refuses connections."""
        self.process.stop()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _http_ok(f"{self.tracking_uri}/health", 0.5):
            time.sleep(0.1)

    def is_up(self) -> bool:
        return _http_ok(f"{self.tracking_uri}/health")


def start_mlflow_server(
    workdir: Path, s3: S3Server, host: str = "127.0.0.1", extra_env: dict[str, str] | None = None
) -> MlflowServer:
    """Start `mlflow server` with sqlite metadata and an s3:// default artifact root.

    ``allowed_hosts`` widens MLflow's Host-header check (DNS-rebinding protection) to the
    in-cluster Service name when pods call it through a Service. ``extra_env`` goes to the server
    process only (e.g. its webhook settings).
    """
    s3.create_bucket(MLFLOW_ARTIFACT_BUCKET)
    port = free_port(host)
    tracking_uri = f"http://{host}:{port}"
    artifact_root = f"s3://{MLFLOW_ARTIFACT_BUCKET}/"
    client_env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": s3.region,
    }
    server_env = _clean_env() | client_env
    server_env.pop("MLFLOW_TRACKING_URI")
    # MLflow 3 also spawns a huey job-runner process by default; tests need no server-side jobs,
    # and on a small shared machine that third interpreter roughly doubles (re)start time.
    server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    server_env |= extra_env or {}
    argv = [
        _find_binary("mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--default-artifact-root",
        artifact_root,
        "--no-serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if host != "127.0.0.1":
        # Pods call it as <service>.<namespace>.svc...: MLflow's Host-header check must allow it.
        argv += ["--allowed-hosts", "*"]
    proc = ManagedProcess(
        name="mlflow", argv=argv, env=server_env, log_path=workdir / "mlflow.log", cwd=workdir
    )
    server = MlflowServer(
        tracking_uri=tracking_uri, env=client_env, process=proc, artifact_root=artifact_root
    )
    try:
        server.start()
    except BaseException:
        proc.stop()
        raise
    return server
