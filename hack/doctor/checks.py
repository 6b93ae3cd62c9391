"""The doctor's settings, the probe results as plain data, and the checks: pure functions from
those results to a `Verdict` each (tests/unit/test_doctor.py fakes the probes)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = REPO / "hack" / "build-tools.sh"

PYTHON_WANTED = (3, 11)
GO_MIN = (1, 26, 0)

# Disk a cold build needs, in GB (10**9 bytes).
VENV_GB = 7.0  # measured: .venv with torch (CUDA wheels) and the dev extras is 6.4 GB; rounded up
GO_BUILD_GB = 6.0  # estimated: tool binaries + GOCACHE + module cache for all tools built cold
IMAGES_GB = 20.0  # estimated: buildah layers of both images (torch: 6 GB), the registry copy
DISK_MARGIN_GB = 5.0  # below need + this: warn (logs, etcd data, pytest temp dirs)

# Memory. Measured: control plane 600-640 MiB, real node ~220 MiB + ~15 MiB a pod. Estimated:
# linking kube-apiserver peaks near 2 GiB, and the tests add MLflow, S3 and renderer processes.
MEMORY_FAIL_GIB = 4.0
MEMORY_WARN_GIB = 8.0
CORES_MEASURED = 2  # every time below was measured on 2 cores

# Minutes to build each tool cold on 2 cores (by its cache directory name in hack/build-tools.sh).
# Measured: kubernetes + etcd + kwok + helm together ~11 min (README; the split below is estimated,
# kube-apiserver dominates); kubernetes-node (kubelet, kube-proxy) 57 s with the Go cache warm from
# the control-plane build and containerd 2 min 9 s (the real-node prototype, shared/real-node.md).
TOOL_BUILD_MIN: Mapping[str, float] = {
    "kubernetes": 8.0, "etcd": 1.0, "kwok": 1.0, "helm": 1.0,
    "kubernetes-node": 1.0, "containerd": 2.0, "registry": 1.5, "prometheus": 4.0,
    "keda": 8.0,  # operator + adapter from a copy of the module; 5 min with the module cached
}
TOOL_BUILD_MIN_DEFAULT = 2.0  # a tool added to build-tools.sh after this table: estimated
VENV_BUILD_MIN = 5.0  # estimated (pip of torch and the dev extras through the proxy)
VENV_UPDATE_MIN = 1.0  # estimated (pip install -e over an existing .venv)
IMAGES_BUILD_MIN = 10.0  # estimated (mmdebstrap base + operator and renderer images, cold)

# Tool directories that mean this tree runs a real node (containerd + kubelet), which needs root
# and the kernel features below; without them those checks only warn.
NODE_TOOLS = frozenset({"kubernetes-node", "containerd"})
NODE_CHECKS = frozenset({"root", "overlayfs", "veth", "bridge", "nftables", "cgroups"})

Level = Literal["ok", "warn", "FAIL"]


# ---------------------------------------------------------------------------------------------
# Probe results: plain data, faked in the unit tests.


@dataclasses.dataclass(frozen=True)
class Cmd:
    """What a command did. rc is None when it could not run (missing) or ran past its timeout."""

    rc: int | None
    out: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def why(self) -> str:
        """A short reason for a failure: the error, else the last line of the output."""
        if self.error:
            return self.error
        lines = [ln.strip() for ln in self.out.splitlines() if ln.strip()]
        return lines[-1][:160] if lines else f"exit status {self.rc}"


@dataclasses.dataclass(frozen=True)
class PythonProbe:
    version: tuple[int, int, int]
    executable: str
    has_ensurepip: bool  # `python -m venv` needs it (Debian: the python3.11-venv package)


@dataclasses.dataclass(frozen=True)
class GoProbe:
    found: bool
    version: str = ""  # "go1.26.8"
    toolchain: str = ""  # GOTOOLCHAIN: "auto", "local", ...
    proxy: str = ""  # GOPROXY
    required: str = ""  # highest `go` line of hack/tools/*/go.mod, e.g. "1.26.1"


@dataclasses.dataclass(frozen=True)
class DiskLocation:
    label: str
    path: Path
    need_gb: float  # what the build still has to write there
    device: int  # st_dev of the nearest existing ancestor
    mount: Path
    free_bytes: int


@dataclasses.dataclass(frozen=True)
class PackageState:
    installed: bool
    candidate: str | None  # apt's candidate version, None when apt has none


@dataclasses.dataclass(frozen=True)
class Tool:
    name: str  # the cache directory's name without the version: "kubernetes-node"
    version: str
    complete: bool  # <cache>/<name>-<version>/.complete exists


@dataclasses.dataclass(frozen=True)
class CacheProbe:
    tools: tuple[Tool, ...]
    tools_cache: Path
    venv_exists: bool  # .venv/bin/python exists
    venv_installed: bool  # .venv/.installed exists
    venv_stale: bool  # pyproject.toml is newer than it (make reinstalls)
    images_expected: bool  # the Makefile has an `images` target
    images_pushed: int  # images make images pushed to the local registry (<name>.pushed)

    @property
    def node_expected(self) -> bool:
        """Whether hack/build-tools.sh builds the real node's programs."""
        return any(t.name in NODE_TOOLS for t in self.tools)


@dataclasses.dataclass(frozen=True)
class Probes:
    python: PythonProbe
    go: GoProbe
    pypi: Cmd
    goproxy: Cmd
    apt_reach: Cmd
    apt_lists_present: bool
    disks: tuple[DiskLocation, ...]
    mem_total_kib: int
    mem_available_kib: int
    cores: int
    euid: int
    filesystems: str  # /proc/filesystems
    mounts: str  # /proc/self/mounts
    veth: Cmd
    bridge: Cmd
    nft: Cmd
    nf_tables_module: bool  # /sys/module/nf_tables exists
    packages: Mapping[str, PackageState]
    cache: CacheProbe


@dataclasses.dataclass(frozen=True)
class Verdict:
    level: Level
    check: str
    message: str

    def line(self) -> str:
        return f"{self.level:<4} {self.check:<9} {self.message}"


# ---------------------------------------------------------------------------------------------
# Checks: pure functions of the probes.


def ok(check: str, message: str) -> Verdict:
    return Verdict("ok", check, message)


def warn(check: str, message: str) -> Verdict:
    return Verdict("warn", check, message)


def fail(check: str, message: str) -> Verdict:
    return Verdict("FAIL", check, message)


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


def parse_go_version(text: str) -> tuple[int, int, int] | None:
    """ "go1.26.8" / "1.26" / "go1.27rc1" -> (1, 26, 8) / (1, 26, 0) / (1, 27, 0)."""
    m = re.match(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check_python(p: PythonProbe, venv_exists: bool) -> Verdict:
    shown = ".".join(map(str, p.version))
    if p.version[:2] < PYTHON_WANTED:
        return fail("python", f"{shown} at {p.executable} is too old: install Python 3.11 (Debian: "
                    "apt-get install python3.11 python3.11-venv), then make PYTHON=python3.11 ...")
    if not p.has_ensurepip and not venv_exists:
        return fail("python", f"{shown} has no ensurepip, so `python -m venv .venv` fails: "
                    f"apt-get install python{p.version[0]}.{p.version[1]}-venv")
    if p.version[:2] > PYTHON_WANTED:
        return warn("python", f"{shown}: the project is built and tested on 3.11; if a wheel is "
                    "missing for this version, use make PYTHON=python3.11 ...")
    return ok("python", f"{shown} ({p.executable})")


def check_go(g: GoProbe) -> Verdict:
    need = max(GO_MIN, parse_go_version(g.required) or GO_MIN)
    need_s = "{}.{}.{}".format(*need)
    get = f"install Go >= {need_s} (https://go.dev/dl) and put its bin/ first on PATH"
    if not g.found:
        return fail("go", f"not found on PATH: {get}")
    have = parse_go_version(g.version)
    if have is None:
        return warn("go", f"cannot read its version {g.version!r}; Go >= {need_s} is needed")
    if have < GO_MIN:
        return fail("go", f"{g.version} is older than {GO_MIN[0]}.{GO_MIN[1]}: {get}")
    if have < need:
        if g.toolchain.startswith("local"):
            return fail("go", f"{g.version}, hack/tools needs go {need_s} and GOTOOLCHAIN=local "
                        f"forbids fetching it: {get}, or unset GOTOOLCHAIN")
        return warn("go", f"{g.version}; hack/tools needs go {need_s}, which go downloads first "
                    f"(GOTOOLCHAIN={g.toolchain or 'auto'}); to skip that, {get}")
    return ok("go", f"{g.version} (hack/tools needs >= {need_s})")


def check_pypi(c: Cmd, venv_ready: bool) -> Verdict:
    if c.ok:
        return ok("pypi", f"package index answers ({c.out.strip() or 'pip download six==1.16.0'})")
    msg = (f"pip cannot download from its index: {c.why()}; check the network, the proxy "
           "(HTTPS_PROXY) and pip's index-url and cert settings (pip config list)")
    if venv_ready:
        return warn("pypi", msg + " (.venv is installed, so a run needs no download)")
    return fail("pypi", msg)


def check_goproxy(c: Cmd, go: GoProbe, tools_ready: bool) -> Verdict:
    if not go.found:
        return warn("goproxy", "not probed: no go on PATH (see the go line)")
    shown = f"GOPROXY={go.proxy or 'default'}"
    if c.ok:
        return ok("goproxy", f"module proxy answers (go list -m -versions golang.org/x/text; "
                  f"{shown})")
    msg = (f"go cannot reach its module proxy ({shown}): {c.why()}; check the network, "
           "HTTPS_PROXY and `go env GOPROXY`")
    if tools_ready:
        return warn("goproxy", msg + " (every tool is cached, so a run builds nothing)")
    return fail("goproxy", msg)


def check_apt(c: Cmd, missing: Sequence[str]) -> Verdict:
    if c.ok:
        return ok("apt", "Debian archive answers (apt-helper download-file .../InRelease)")
    msg = f"apt cannot reach its archive: {c.why()}; check /etc/apt/sources.list* and the proxy"
    if missing:
        return fail("apt", msg + f" (needed to install {', '.join(missing)})")
    return warn("apt", msg + " (every package is installed, so nothing needs it)")


def disk_needs(cache: CacheProbe) -> dict[str, float]:
    """GB each location still has to take: nothing for what is already built."""
    tools_ready = bool(cache.tools) and all(t.complete for t in cache.tools)
    images_needed = cache.images_expected and cache.images_pushed == 0
    return {
        ".venv": 0.0 if cache.venv_installed else VENV_GB,
        "tool cache": 0.0 if tools_ready else GO_BUILD_GB,
        "image store": IMAGES_GB if images_needed else 0.0,
    }


def check_disks(disks: Sequence[DiskLocation]) -> list[Verdict]:
    """One verdict per filesystem: the needs of every location on it against its free space."""
    by_device: dict[int, list[DiskLocation]] = {}
    for d in disks:
        by_device.setdefault(d.device, []).append(d)
    verdicts = []
    for group in by_device.values():
        need_gb = sum(d.need_gb for d in group)
        free = group[0].free_bytes
        where = f"{group[0].mount} ({', '.join(d.label for d in group)})"
        text = f"{_gb(free)} free on {where}; the build still needs ~{need_gb:.0f} GB"
        if free < need_gb * 1e9:
            verdicts.append(fail("disk", f"{text}: free space there, or set TRYON_TOOLS_CACHE "
                                 "to a bigger disk, before building"))
        elif free < (need_gb + DISK_MARGIN_GB) * 1e9:
            verdicts.append(warn("disk", f"{text} + ~{DISK_MARGIN_GB:.0f} GB for logs and test "
                                 "data: free some space"))
        else:
            verdicts.append(ok("disk", text))
    return verdicts


def check_memory(total_kib: int, available_kib: int) -> Verdict:
    total, avail = total_kib / 2**20, available_kib / 2**20
    text = f"{total:.1f} GiB, {avail:.1f} GiB available"
    if total < MEMORY_FAIL_GIB:
        return fail("memory", f"{text}: the build and the tests need >= {MEMORY_FAIL_GIB:.0f} GiB "
                    "(linking kube-apiserver alone takes ~2 GiB): use a bigger machine")
    if avail < MEMORY_FAIL_GIB or total < MEMORY_WARN_GIB:
        return warn("memory", f"{text}: under {MEMORY_WARN_GIB:.0f} GiB, or taken by other "
                    "processes; expect swapping or OOM kills (stop other builds first)")
    return ok("memory", text)


def check_cores(cores: int) -> Verdict:
    if cores < CORES_MEASURED:
        return warn("cores", f"{cores}: the build times are measured on {CORES_MEASURED} cores; "
                    "expect about twice as long")
    return ok("cores", str(cores))


def check_root(euid: int) -> Verdict:
    if euid != 0:
        return fail("root", f"running as uid {euid}: the real node (containerd, kubelet, the CNI "
                    "bridge, nftables) needs root: run as root (sudo make ...)")
    return ok("root", "running as root")


def check_overlayfs(filesystems: str) -> Verdict:
    names = {line.split()[-1] for line in filesystems.splitlines() if line.split()}
    if "overlay" in names:
        return ok("overlayfs", "in /proc/filesystems")
    return fail("overlayfs", "not in /proc/filesystems; containerd's and buildah's snapshots need "
                "it: modprobe overlay (or a kernel with CONFIG_OVERLAY_FS)")


def _link_verdict(kind: str, c: Cmd, is_root: bool) -> Verdict:
    if c.ok:
        return ok(kind, f"a {kind} can be created (a temporary one was added and deleted)")
    if c.rc is None and "not found" in c.error:
        return warn(kind, "cannot probe: `ip` is missing (apt-get install iproute2)")
    if not is_root:
        return warn(kind, f"not probed (needs root): {c.why()}")
    if "unknown device type" in c.out.lower() or "not supported" in c.out.lower():
        return fail(kind, f"the kernel cannot make a {kind} ({c.why()}); the real node's pod "
                    f"network needs it: modprobe {kind}, or a kernel with it")
    return fail(kind, f"`ip link add ... type {kind}` failed: {c.why()}; the real node needs "
                "CAP_NET_ADMIN in this network namespace")


def check_veth(c: Cmd, is_root: bool) -> Verdict:
    return _link_verdict("veth", c, is_root)


def check_bridge(c: Cmd, is_root: bool) -> Verdict:
    return _link_verdict("bridge", c, is_root)


def check_nftables(c: Cmd, module_loaded: bool, is_root: bool) -> Verdict:
    if c.ok:
        return ok("nftables", "`nft list tables` works")
    if c.rc is None and "not found" in c.error:
        if module_loaded:
            return ok("nftables", "nf_tables is in the kernel (the nft tool is not installed "
                      "yet: see the nftables package line)")
        return warn("nftables", "cannot probe: nft is missing (apt-get install nftables)")
    if not is_root:
        return warn("nftables", f"not probed (needs root): {c.why()}")
    return fail("nftables", f"`nft list tables` failed: {c.why()}; kube-proxy's nftables mode "
                "needs it: modprobe nf_tables, or a kernel with CONFIG_NF_TABLES")


def cgroup_layout(mounts: str) -> str:
    """'v2' (unified only), 'v1-hybrid' (v1 controllers + a cgroup2 mount), 'v1', or 'none'."""
    v1 = v2 = False
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        if fields[2] == "cgroup2":
            v2 = True
        elif fields[2] == "cgroup":
            v1 = True
    if v1:
        return "v1-hybrid" if v2 else "v1"
    return "v2" if v2 else "none"


def check_cgroups(mounts: str) -> Verdict:
    layout = cgroup_layout(mounts)
    if layout == "v2":
        return ok("cgroups", "v2 (unified)")
    if layout == "none":
        return fail("cgroups", "no cgroup filesystem is mounted; the kubelet and runc need one: "
                    "mount cgroup2 on /sys/fs/cgroup")
    shown = "v1 (hybrid: v1 controllers + unified)" if layout == "v1-hybrid" else "v1"
    return warn("cgroups", f"{shown}: the kubelet refuses cgroup v1 unless its config sets "
                "failCgroupV1: false (deprecated; boot with systemd.unified_cgroup_hierarchy=1 "
                "for v2)")


def check_packages(packages: Mapping[str, PackageState], lists_present: bool) -> list[Verdict]:
    verdicts = []
    for name, state in packages.items():
        install = f"apt-get install -y {name}"
        if state.installed:
            verdicts.append(ok("package", name))
        elif state.candidate:
            verdicts.append(warn("package", f"{name} missing; apt has {state.candidate}: will be "
                                 f"installed by .ci/run (by hand: {install})"))
        elif not lists_present:
            verdicts.append(warn("package", f"{name} missing and apt has no package lists yet: "
                                 f"apt-get update && {install}"))
        else:
            verdicts.append(fail("package", f"{name} missing and apt has no candidate: add a "
                                 "Debian bookworm source to /etc/apt/sources.list.d, then "
                                 f"apt-get update && {install}"))
    return verdicts


def missing_packages(packages: Mapping[str, PackageState]) -> list[str]:
    return [name for name, state in packages.items() if not state.installed]


def build_plan(cache: CacheProbe) -> list[tuple[str, float]]:
    """What a run will build, with the estimated minutes on 2 cores."""
    plan: list[tuple[str, float]] = []
    if not cache.venv_installed:
        plan.append((".venv", VENV_BUILD_MIN))
    elif cache.venv_stale:
        plan.append((".venv update (pyproject.toml changed)", VENV_UPDATE_MIN))
    for t in cache.tools:
        if not t.complete:
            minutes = TOOL_BUILD_MIN.get(t.name, TOOL_BUILD_MIN_DEFAULT)
            plan.append((f"{t.name}-{t.version}", minutes))
    if cache.images_expected and cache.images_pushed == 0:
        plan.append(("images", IMAGES_BUILD_MIN))
    return plan


def check_cache(cache: CacheProbe, cores: int) -> list[Verdict]:
    verdicts = []
    if not cache.tools:
        verdicts.append(warn("cache", f"found no tool directories in {BUILD_TOOLS.name}, so "
                             "cannot say which tools a run builds"))
    done = [f"{t.name}-{t.version}" for t in cache.tools if t.complete]
    if cache.venv_installed:
        done.insert(0, ".venv")
    if cache.images_pushed:
        done.append(f"{cache.images_pushed} pushed image(s)")
    verdicts.append(ok("cache", "cached: " + (", ".join(done) if done else "nothing yet")))
    plan = build_plan(cache)
    if not plan:
        verdicts.append(ok("build", "nothing to build: a run starts at once"))
        return verdicts
    minutes = sum(m for _, m in plan)
    basis = f"on {CORES_MEASURED} cores; figures in hack/doctor/checks.py"
    if cores < CORES_MEASURED:
        minutes *= CORES_MEASURED / max(cores, 1)
        basis = f"scaled to {cores} core(s)"
    what = ", ".join(f"{name} ~{m:g} min" for name, m in plan)
    verdicts.append(ok("build", f"a run will build {what}: ~{minutes:.0f} min in all ({basis}), "
                       "once"))
    return verdicts


def node_only(v: Verdict, node_expected: bool) -> Verdict:
    """A FAIL of a check only the real node needs is a warn while the tree builds no node."""
    if v.level != "FAIL" or node_expected or v.check not in NODE_CHECKS:
        return v
    return warn(v.check, v.message + " (only the real node needs this; this tree builds none)")


def check_all(p: Probes) -> list[Verdict]:
    is_root = p.euid == 0
    tools_ready = bool(p.cache.tools) and all(t.complete for t in p.cache.tools)
    verdicts = [
        check_python(p.python, p.cache.venv_exists),
        check_go(p.go),
        check_pypi(p.pypi, p.cache.venv_installed and not p.cache.venv_stale),
        check_goproxy(p.goproxy, p.go, tools_ready),
        check_apt(p.apt_reach, missing_packages(p.packages)),
        *check_disks(p.disks),
        check_memory(p.mem_total_kib, p.mem_available_kib),
        check_cores(p.cores),
        check_root(p.euid),
        check_overlayfs(p.filesystems),
        check_veth(p.veth, is_root),
        check_bridge(p.bridge, is_root),
        check_nftables(p.nft, p.nf_tables_module, is_root),
        check_cgroups(p.mounts),
        *check_packages(p.packages, p.apt_lists_present),
        *check_cache(p.cache, p.cores),
    ]
    return [node_only(v, p.cache.node_expected) for v in verdicts]


def exit_code(verdicts: Iterable[Verdict]) -> int:
    return 1 if any(v.level == "FAIL" for v in verdicts) else 0
