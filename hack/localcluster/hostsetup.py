"""What the real node changes on the host, and how each change is undone.

A kubelet node is not contained in its state dir: the kubelet, containerd and the CNI plugins
write to fixed host paths, mount, create cgroups and a bridge, and change sysctls. Each of those
is listed here once, so ``up`` records the host as it was and ``down`` (also after a crash, from
the record alone) puts it back. ``snapshot()`` is what the teardown test compares.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .nodeconfig import BRIDGE, NODE_IP, forward_guard_rules

# Written by the kubelet, containerd and libcni whatever their root dirs say.
FIXED_HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/netns",
    "/var/lib/cni",
)
# The kubelet sets these at start (kernel defaults it wants); they are restored once it is Ready.
KUBELET_SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
# The CNI bridge plugin (a gateway bridge) turns forwarding on when the first pod gets its
# network; pods need it while the node runs, so it is restored at teardown only.
NETWORK_SYSCTLS = ("net.ipv4.ip_forward",)
# Not changed by our settings, but watched by the teardown test in case a version starts to.
WATCHED_SYSCTLS = (
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.netfilter.nf_conntrack_max",
)
NFT_TABLES = (("inet", "tryon-realnode"), ("ip", "kube-proxy"), ("ip6", "kube-proxy"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMES = ("kubepods", "kubepods.slice")
RECORD = Path("/run/tryon-realnode.json")
# The node's own files: fixed and short, because unix socket paths must stay under 108 bytes
# (the kubelet puts sockets deep under its root dir) and there is one node per host anyway.
NODE_ROOT = Path("/var/lib/tryon-realnode")
OTHER_MOUNT_OWNERS = ("/var/lib/containers/storage/",)
LOCK = Path("/run/tryon-realnode.lock")


@dataclass
class HostRecord:
    """The host as it was before ``up``: written first, read by ``down`` even after a crash."""

    state_dir: str
    sysctls: dict[str, str]
    preexisting_paths: list[str]
    pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        RECORD.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls) -> HostRecord | None:
        try:
            return cls(**json.loads(RECORD.read_text()))
        except FileNotFoundError:
            return None


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value + "\n")


def record_host(state_dir: Path) -> HostRecord:
    return HostRecord(
        state_dir=str(state_dir),
        sysctls={name: read_sysctl(name) for name in (*KUBELET_SYSCTLS, *NETWORK_SYSCTLS)},
        preexisting_paths=[p for p in FIXED_HOST_PATHS if os.path.lexists(p)],
    )


def restore_sysctls(record: HostRecord, names: tuple[str, ...] | None = None) -> None:
    """Puts back the recorded values (of ``names`` only, when given)."""
    for name, value in record.sysctls.items():
        if names is not None and name not in names:
            continue
        if read_sysctl(name) != value:
            write_sysctl(name, value)


# --- network ---


def bridge_up() -> None:
    """The node IP lives on the CNI bridge: this kernel has no dummy links; loopback is refused."""
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout
    if f" {NODE_IP}/" not in addrs:
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    delete_nft_table("inet", "tryon-realnode")
    subprocess.run(["nft", "-f", "-"], input=forward_guard_rules(), text=True, check=True)


def delete_nft_table(family: str, name: str) -> None:
    _run("nft", "delete", "table", family, name, check=False)


def bridge_down() -> None:
    _run("ip", "link", "del", BRIDGE, check=False)
    for family, name in NFT_TABLES:
        delete_nft_table(family, name)


# --- mounts and cgroups ---


def mounts_under(prefixes: list[str]) -> list[str]:
    """Mount points below any prefix, deepest first (so nested mounts go before their parents)."""
    points: list[str] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: (-p.count("/"), p))


def unmount_all(prefixes: list[str]) -> None:
    # A mount can hide another at the same point (the kubelet's rshared self-bind), so repeat.
    for _ in range(5):
        points = mounts_under(prefixes)
        if not points:
            return
        for point in points:
            if _run("umount", point, check=False).returncode != 0:
                _run("umount", "-l", point, check=False)


def kubepods_cgroups() -> list[Path]:
    """Every kubepods cgroup in every hierarchy (v1 controllers and unified), deepest first."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        for name in CGROUP_NAMES:
            top = hierarchy / name
            if top.is_dir():
                found.extend(p for p in top.rglob("*") if p.is_dir())
                found.append(top)
    return sorted(found, key=lambda p: -len(p.parts))


def remove_cgroups(timeout: float = 10.0) -> None:
    """rmdir depth-first; a cgroup is busy until its last killed process has exited, so retry."""
    deadline = time.monotonic() + timeout
    while True:
        for cgroup in kubepods_cgroups():
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        if not kubepods_cgroups() or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def remove_created_paths(record: HostRecord) -> None:
    for path in FIXED_HOST_PATHS:
        if path not in record.preexisting_paths:
            _run("rm", "-rf", "--one-file-system", path, check=False)


# --- for the teardown test ---


def snapshot() -> dict[str, object]:
    """What teardown must leave as it found: links, nft tables, mounts, cgroups, paths, sysctls."""
    links = sorted(
        line.split()[0] for line in _run("ip", "-br", "link").stdout.splitlines() if line.strip()
    )
    tables = sorted(_run("nft", "list", "tables", check=False).stdout.splitlines())
    points = {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}
    # buildah's own store (an image build may run meanwhile) is not the node's business.
    mounts = sorted(p for p in points if not p.startswith(OTHER_MOUNT_OWNERS))
    return {
        "node_root": NODE_ROOT.exists(),
        "links": links,
        "nft_tables": tables,
        "mounts": mounts,
        "kubepods_cgroups": sorted(str(p) for p in kubepods_cgroups()),
        "fixed_paths": sorted(p for p in FIXED_HOST_PATHS if os.path.lexists(p)),
        "sysctls": {
            name: read_sysctl(name)
            for name in (*KUBELET_SYSCTLS, *NETWORK_SYSCTLS, *WATCHED_SYSCTLS)
            if Path("/proc/sys", *name.split(".")).exists()
        },
    }
