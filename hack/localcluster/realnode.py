"""A real kubelet node (containerd + runc + CNI bridge + kube-proxy + CoreDNS) next to kwok.

kwok plays kubelets for scale and fault tests; this node runs real containers, so the renderer's
probes, the Service's packets and the in-cluster operator are the real thing. It is root-only and
one per host (fixed ports and host paths): a lock and a record in /run say who owns it, and
``teardown`` undoes every host change from that record alone, also after a crash.

Order matters on the way up: the bridge (the node IP) exists before the API server binds to it;
containerd, the pause image and the image registry before the kubelet; the kubelet Ready before
kube-proxy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import clusterdns, hostsetup, registry
from . import nodeconfig as cfg
from .hostsetup import HostRecord
from .pki import issue_client_cert, write_kubeconfig
from .procs import http_ok, pid_alive, wait_until

RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
RUNC_ROOT = Path("/run/containerd/runc/k8s.io")
DNS_PORT = 53
DNS_HEALTH_PORT, DNS_READY_PORT = 10253, 10254
STOP_ORDER = ("kube-proxy", "gpustub", "coredns", "kubelet", "containerd")


class NodeError(RuntimeError):
    """A node set-up step failed; the message names the step."""


@dataclass(frozen=True)
class NodeBinaries:
    kubelet: Path
    kube_proxy: Path
    gpustub: Path
    pause: Path
    containerd_dir: Path
    coredns: Path

    @property
    def ctr(self) -> Path:
        return self.containerd_dir / "ctr"


def default_image_root() -> Path:
    cache = Path(os.environ.get("TRYON_TOOLS_CACHE", Path.home() / ".cache/tryon-operator/bin"))
    return Path(os.environ.get("TRYON_CONTAINERD_ROOT", cache.parent / "containerd"))


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialises node set-up and teardown on this host (two runs never interleave)."""
    with open(hostsetup.LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def prepare_host(state_dir: Path) -> None:
    """Claims the host for this state dir and creates the node IP; refuses a second live node."""
    with host_lock():
        record = HostRecord.load()
        live = record is not None and any(pid_alive(p) for p in record.pids.values())
        if record is not None and live and record.state_dir != str(state_dir):
            raise NodeError(
                f"a real node already runs on this host for {record.state_dir}; "
                f"stop it first (make cluster-down STATE_DIR={record.state_dir})"
            )
        if record is not None:
            _teardown(record)
        record = hostsetup.record_host(state_dir)
        record.save()
        hostsetup.bridge_up()


class RealNode:
    """Starts the node's programs for a control plane whose PKI and kubectl are given."""

    def __init__(
        self,
        state_dir: Path,
        pki: Path,
        server: str,
        kubectl: Callable[..., str],
        binaries: NodeBinaries,
    ) -> None:
        self.paths = cfg.NodePaths(state=hostsetup.NODE_ROOT, image_root=default_image_root())
        self.logs = state_dir / "logs"
        self.pki, self.server, self.kubectl, self.bin = pki, server, kubectl, binaries

    def up(self, timeout: float = 120.0) -> dict[str, int]:
        with host_lock():
            record = HostRecord.load()
            if record is None:
                raise NodeError("prepare_host() was not called (no host record)")
            try:
                self._up(record, timeout)
            except BaseException:
                _teardown(record)
                raise
            return record.pids

    def _up(self, record: HostRecord, timeout: float) -> None:
        started = time.monotonic()
        step = _Steps(self.logs)
        with step("write node configs and identities"):
            self._write_configs()
        with step("grant the node, kube-proxy and DNS identities their RBAC"):
            self._apply_rbac()
        with step("start containerd"):
            self._spawn(
                record,
                "containerd",
                [
                    str(self.bin.containerd_dir / "containerd"),
                    f"--config={self.paths.state / 'containerd.toml'}",
                ],
            )
            _wait(
                "containerd answers",
                lambda: self._ctr_ok("version"),
                30,
                self.logs / "containerd.log",
                record.pids["containerd"],
            )
            self._remove_stale_containers()
        with step("import the pause image; the image registry up"):
            self._import_pause_image()
            registry.up()
            self._remove_stale_images()
        with step("start cluster DNS (CoreDNS)"):
            corefile = self.paths.state / "Corefile"
            corefile.write_text(
                clusterdns.corefile(
                    cfg.NODE_IP,
                    DNS_PORT,
                    self.paths.state / "coredns.kubeconfig",
                    DNS_HEALTH_PORT,
                    DNS_READY_PORT,
                )
            )
            self._spawn(record, "coredns", clusterdns.coredns_argv(self.bin.coredns, corefile))
        with step("start the kubelet and the GPU device plugin"):
            self._spawn(
                record,
                "kubelet",
                cfg.kubelet_argv(
                    self.bin.kubelet,
                    self.paths,
                    self.paths.state / "kubelet.json",
                    self.paths.state / "kubelet.kubeconfig",
                ),
            )
            self._spawn(record, "gpustub", [str(self.bin.gpustub), f"--count={cfg.FAKE_GPUS}"])
            _wait(
                f"node {cfg.NODE_NAME} Ready",
                self._node_ready,
                timeout,
                self.logs / "kubelet.log",
                record.pids["kubelet"],
            )
            hostsetup.restore_sysctls(record, hostsetup.KUBELET_SYSCTLS)
        with step("start kube-proxy (nftables)"):
            self._spawn(
                record,
                "kube-proxy",
                [str(self.bin.kube_proxy), f"--config={self.paths.state / 'kube-proxy.json'}"],
            )
            _wait(
                "kube-proxy healthz",
                lambda: http_ok("http://127.0.0.1:10256/healthz"),
                60,
                self.logs / "kube-proxy.log",
            )
        with step(f"wait for {cfg.FAKE_GPUS} nvidia.com/gpu from the device plugin and DNS"):
            _wait(
                "nvidia.com/gpu allocatable", self._gpus_allocatable, 60, self.logs / "gpustub.log"
            )
            try:
                clusterdns.wait_ready(DNS_READY_PORT, timeout=60)
            except TimeoutError as err:
                raise NodeError(f"{err} (log: {self.logs / 'coredns.log'})") from err
        print(f"real node {cfg.NODE_NAME} up in {time.monotonic() - started:.1f}s", flush=True)

    # -- steps --

    def _write_configs(self) -> None:
        p = self.paths
        for d in (
            p.state / "run",
            p.containerd_state,
            p.kubelet_root,
            p.cni_conf_dir,
            p.cni_ipam_dir,
            p.pod_logs,
            p.image_root,
            self.logs,
        ):
            d.mkdir(parents=True, exist_ok=True)
        p.empty_resolv_conf.write_text("")
        hosts = p.registry_hosts / registry.ADDRESS / "hosts.toml"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(registry.hosts_toml(registry.registry_paths()))
        (p.state / "containerd.toml").write_text(cfg.containerd_toml(p, RUNC, CNI_BIN_DIR))
        (p.cni_conf_dir / "10-tryon-realnode.conflist").write_text(cfg.cni_conflist(p))
        (p.state / "kubelet.json").write_text(
            cfg.kubelet_config(p, self.pki / "ca.crt", cluster_dns=cfg.NODE_IP)
        )
        (p.state / "kube-proxy.json").write_text(
            cfg.kube_proxy_config(p.state / "kube-proxy.kubeconfig")
        )
        identities = {
            "kubelet": f"/O=system:nodes/CN=system:node:{cfg.NODE_NAME}",
            "kube-proxy": "/CN=system:kube-proxy",
            "coredns": f"/CN={clusterdns.COREDNS_USER}",
        }
        for name, subject in identities.items():
            issue_client_cert(self.pki, f"realnode-{name}", subject)
            write_kubeconfig(
                p.state / f"{name}.kubeconfig", self.server, self.pki, f"realnode-{name}"
            )

    def _apply_rbac(self) -> None:
        node_binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "tryon:real-node"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:node",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}
            ],
        }
        items = [node_binding, *clusterdns.coredns_rbac()]
        self.kubectl(
            "apply",
            "-f",
            "-",
            input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin.ctr), f"--address={self.paths.containerd_socket}", "-n", "k8s.io"]
        return subprocess.run([*argv, *args], capture_output=True, text=True, check=False)

    def _ctr_ok(self, *args: str) -> bool:
        return self._ctr(*args).returncode == 0

    def _remove_stale_containers(self) -> None:
        """Containers a crashed run left in the (persistent) containerd root are deleted first."""
        for cid in self._ctr("containers", "ls", "-q").stdout.split():
            self._ctr("tasks", "kill", "-s", "SIGKILL", cid)
            self._ctr("tasks", "delete", "-f", cid)
            self._ctr("containers", "delete", cid)

    def _import_pause_image(self) -> None:
        """The sandbox image is built here from the pause binary, so it is imported, not pulled."""
        if cfg.PAUSE_IMAGE in self._ctr("images", "ls", "-q").stdout.split():
            return
        tar = self.paths.state / "pause.tar"
        tar.write_bytes(pause_image_archive(self.bin.pause.read_bytes(), cfg.PAUSE_IMAGE))
        result = self._ctr("images", "import", "--platform", "linux/amd64", str(tar))
        if result.returncode != 0:
            raise NodeError(f"ctr import of the pause image failed: {result.stderr.strip()}")

    def _remove_stale_images(self) -> None:
        """The project's images of other commits go (the renderer's is 6 GB unpacked; the
        kubelet's image GC is off at 100 %): the containerd root outlives every cluster. An image
        the registry serves under this commit's tag stays, whatever tag pulled it (a new commit
        that did not change the image costs no pull)."""
        listing = [line.split() for line in self._ctr("images", "ls").stdout.splitlines()[1:]]
        images = [(row[0], row[2]) for row in listing if len(row) > 2]
        tag = registry.image_tag()
        current = {registry.image(name, tag) for name in registry.IMAGE_NAMES}
        served = {registry.manifest_digest(name, tag) for name in registry.IMAGE_NAMES}
        stale = stale_images(images, current, {d for d in served if d})
        if stale:
            self._ctr("images", "rm", *stale)

    def _spawn(self, record: HostRecord, name: str, argv: list[str]) -> None:
        env = dict(os.environ)
        # containerd finds its shim on PATH: ours first, never a distribution's older one.
        env["PATH"] = f"{self.bin.containerd_dir}:/usr/sbin:/usr/bin:/sbin:/bin"
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.paths.state,
                env=env,
            )
        record.pids[name] = proc.pid
        record.save()

    def _node(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.kubectl("get", "node", cfg.NODE_NAME, "-o", "json")))
        except Exception:
            return {}

    def _node_ready(self) -> bool:
        status = self._node().get("status") or {}
        conditions = status.get("conditions", []) if isinstance(status, dict) else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _gpus_allocatable(self) -> bool:
        status = self._node().get("status") or {}
        alloc = status.get("allocatable", {}) if isinstance(status, dict) else {}
        return str(alloc.get("nvidia.com/gpu")) == str(cfg.FAKE_GPUS)


def stale_images(
    images: list[tuple[str, str]],
    current: set[str],
    served: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """Of containerd's (name, manifest digest) pairs, the names to remove: the project's tags
    other than ``current`` whose image is not among the ``served`` digests, and the other names
    the CRI gives an image (its id ``sha256:…`` and its registry digest ``…@sha256:…``, the
    pods' ``imageID``) once no kept tag names it."""

    def alias(ref: str) -> bool:
        return ref.startswith("sha256:") or "@sha256:" in ref

    def stale_tag(ref: str) -> bool:
        project = ref.startswith((f"{registry.REPOSITORY}/", "localhost/tryon/tryon-"))
        return project and not alias(ref) and ref not in current

    kept = {digest for ref, digest in images if not alias(ref) and not stale_tag(ref)} | served
    return [
        ref
        for ref, digest in images
        if (stale_tag(ref) and digest not in served) or (alias(ref) and digest not in kept)
    ]


def pause_image_archive(pause_binary: bytes, ref: str) -> bytes:
    """A docker-archive whose one layer holds /pause: the sandbox image, without a registry."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        info = tarfile.TarInfo("pause")
        info.size, info.mode = len(pause_binary), 0o755
        layer.addfile(info, io.BytesIO(pause_binary))
    layer_bytes = layer_buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}])
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in (
            (config_name, config),
            ("layer.tar", layer_bytes),
            ("manifest.json", manifest.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


# --- teardown ---


def teardown() -> bool:
    """Undoes everything a node (running or crashed) did to this host. False if there was none."""
    with host_lock():
        record = HostRecord.load()
        if record is None:
            return False
        _teardown(record)
        return True


def _teardown(record: HostRecord) -> None:
    for name in STOP_ORDER[:-1]:
        _stop(record.pids.get(name))
    _kill_containers()
    _stop(record.pids.get("containerd"))
    state = hostsetup.NODE_ROOT
    _kill_shims(str(state / "run" / "containerd.sock"))
    hostsetup.unmount_all([str(state), *hostsetup.FIXED_HOST_PATHS, str(default_image_root())])
    hostsetup.remove_created_paths(record)
    subprocess.run(["rm", "-rf", "--one-file-system", str(state)], check=False)
    hostsetup.bridge_down()
    hostsetup.remove_cgroups()
    hostsetup.restore_sysctls(record)
    hostsetup.RECORD.unlink(missing_ok=True)
    registry.down()  # its storage, CA and password stay in the tool cache


def _stop(pid: int | None, grace: float = 10.0) -> None:
    if pid is None or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _kill_containers() -> None:
    """Kills and deletes every container runc knows in namespace k8s.io (no containerd needed)."""
    if not RUNC_ROOT.is_dir():
        return
    listing = subprocess.run(
        [RUNC, "--root", str(RUNC_ROOT), "list", "-q"], capture_output=True, text=True, check=False
    )
    for cid in listing.stdout.split():
        subprocess.run(
            [RUNC, "--root", str(RUNC_ROOT), "kill", cid, "KILL"], capture_output=True, check=False
        )
    for cid in listing.stdout.split():
        subprocess.run(
            [RUNC, "--root", str(RUNC_ROOT), "delete", "--force", cid],
            capture_output=True,
            check=False,
        )


def _kill_shims(socket: str) -> None:
    """Shims re-parent to PID 1 and outlive containerd; ours name our socket in their argv."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"containerd-shim" in argv[0] and socket.encode() in argv:
                os.kill(int(proc.name), signal.SIGKILL)


# --- small helpers ---


class _Steps:
    """Names each set-up step, so a failure says which one, and prints how long each took."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs

    @contextlib.contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except NodeError:
            raise
        except Exception as err:
            raise NodeError(
                f"real node step '{title}' failed: {err} (logs in {self.logs})"
            ) from err
        print(f"  node: {title} ({time.monotonic() - started:.1f}s)", flush=True)


def _wait(
    what: str, check: Callable[[], bool], timeout: float, log: Path, pid: int | None = None
) -> None:
    wait_until(what, check, timeout, log, error=NodeError, pid=pid)
