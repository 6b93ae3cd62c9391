"""The probes: the only code of the doctor that touches the machine (subprocesses with short
timeouts, files under /proc and /sys, the disks), gathered once, in parallel, into `Probes`."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .checks import (
    BUILD_TOOLS,
    REPO,
    CacheProbe,
    Cmd,
    DiskLocation,
    GoProbe,
    PackageState,
    Probes,
    PythonProbe,
    Tool,
    disk_needs,
    parse_go_version,
)

HOME = Path.home()
VENV = REPO / ".venv"
TRYON_CACHE = HOME / ".cache" / "tryon-operator"
TOOLS_CACHE = Path(os.environ.get("TRYON_TOOLS_CACHE", str(TRYON_CACHE / "bin")))
IMAGES_CACHE = TRYON_CACHE / "images"
CONTAINERS_STORE = Path("/var/lib/containers")  # buildah's image store when run as root
TOOL_MODULES = REPO / "hack" / "tools"

# Debian packages the build and the real node use, and how to tell one is there without dpkg.
PACKAGES: Mapping[str, str] = {
    "buildah": "/usr/bin/buildah",
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "nftables": "/usr/sbin/nft",
    "openssl": "/usr/bin/openssl",
    "util-linux": "/usr/bin/flock",
}

NET_TIMEOUT_S = 5.0  # one registry query; each is tried twice
CMD_TIMEOUT_S = 5.0  # a local command


# ---------------------------------------------------------------------------------------------
# Probes: the only code here that touches the machine.


def run_cmd(argv: Sequence[str], timeout: float = CMD_TIMEOUT_S, *, cwd: str | None = None,
            env: Mapping[str, str] | None = None) -> Cmd:
    if shutil.which(argv[0]) is None and not os.path.isfile(argv[0]):
        return Cmd(None, error=f"{argv[0]}: not found")
    try:
        r = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                           env=None if env is None else {**os.environ, **env},
                           stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return Cmd(None, error=f"no answer within {timeout:g} s")
    except OSError as e:
        return Cmd(None, error=str(e))
    return Cmd(r.returncode, (r.stdout or "") + (r.stderr or ""))


def retried(probe: Callable[[], Cmd], attempts: int = 2, backoff_s: float = 0.5) -> Cmd:
    """A registry query, tried again after a short pause when it fails (it may be transient)."""
    result = probe()
    for i in range(1, attempts):
        if result.ok:
            break
        time.sleep(backoff_s * i)
        result = probe()
    return result


def probe_python() -> PythonProbe:
    v = sys.version_info
    return PythonProbe((v.major, v.minor, v.micro), sys.executable,
                       importlib.util.find_spec("ensurepip") is not None)


def probe_go() -> GoProbe:
    required = ""
    for mod in sorted(TOOL_MODULES.glob("*/go.mod")):
        m = re.search(r"^go\s+(\S+)", mod.read_text(), re.M)
        found = parse_go_version(m.group(1)) if m else None
        if m and found and found > (parse_go_version(required) or (0, 0, 0)):
            required = m.group(1)
    with tempfile.TemporaryDirectory(prefix="doctor-go-") as tmp:
        c = run_cmd(["go", "env", "GOVERSION", "GOTOOLCHAIN", "GOPROXY"], cwd=tmp,
                    env={"GOFLAGS": ""})
    if not c.ok:
        return GoProbe(False, required=required)
    lines = [*c.out.splitlines(), "", "", ""]
    return GoProbe(True, lines[0].strip(), lines[1].strip(), lines[2].strip(), required)


def probe_pypi() -> Cmd:
    """pip download of one small wheel, with the .venv's pip if there is one; without any pip (a
    fresh Debian python3 has none; `python -m venv` brings its own) a plain GET of the index."""
    py = VENV / "bin" / "python"
    python = str(py) if py.exists() else sys.executable
    if importlib.util.find_spec("pip") is None and python == sys.executable:
        return retried(probe_index_http)

    def once() -> Cmd:
        with tempfile.TemporaryDirectory(prefix="doctor-pip-") as tmp:
            return run_cmd([python, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
                            "--quiet", "--timeout", str(int(NET_TIMEOUT_S)), "--retries", "0",
                            "--dest", tmp, "six==1.16.0"], NET_TIMEOUT_S * 2,
                           env={"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"})

    return retried(once)


def probe_index_http() -> Cmd:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    url = f"{index}/six/"
    try:
        context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
        with urllib.request.urlopen(url, timeout=NET_TIMEOUT_S, context=context) as r:
            return Cmd(0, f"GET {url}: HTTP {r.status}; no pip to try yet")
    except (OSError, ValueError) as e:  # URLError and ssl errors are OSErrors
        return Cmd(1, error=f"GET {url}: {e}")


def probe_goproxy() -> Cmd:
    def once() -> Cmd:
        with tempfile.TemporaryDirectory(prefix="doctor-go-") as tmp:
            c = run_cmd(["go", "list", "-m", "-versions", "golang.org/x/text"], NET_TIMEOUT_S,
                        cwd=tmp, env={"GOFLAGS": "", "GO111MODULE": "on"})
        if c.ok and not c.out.startswith("golang.org/x/text v"):
            return Cmd(1, c.out, "the proxy listed no versions of golang.org/x/text")
        return c

    return retried(once)


def probe_apt_reach() -> Cmd:
    targets = run_cmd(["apt-get", "indextargets", "--format", "$(BASE_URI)"])
    if targets.rc is None:
        return targets
    uris = [ln.strip() for ln in targets.out.splitlines()]
    base = next((u for u in uris if u.startswith(("http://", "https://"))), "")
    if not base:
        return Cmd(None, error="apt has no http(s) index targets (apt-get update first)")
    helper = "/usr/lib/apt/apt-helper"

    def once() -> Cmd:
        with tempfile.TemporaryDirectory(prefix="doctor-apt-") as tmp:
            c = run_cmd([helper, "-o", f"Acquire::http::Timeout={int(NET_TIMEOUT_S)}",
                         "-o", f"Acquire::https::Timeout={int(NET_TIMEOUT_S)}",
                         "download-file", base.rstrip("/") + "/InRelease", f"{tmp}/InRelease"],
                        NET_TIMEOUT_S + 5)
            # apt-helper may exit 0 after a failed fetch; the file is the proof.
            if c.ok and not Path(tmp, "InRelease").is_file():
                return Cmd(1, c.out)
            return c

    return retried(once)


def probe_packages() -> tuple[dict[str, PackageState], bool]:
    lists = Path("/var/lib/apt/lists")
    lists_present = lists.is_dir() and any(lists.glob("*_Packages*"))
    dpkg = run_cmd(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *PACKAGES])
    installed = {ln.split()[0] for ln in dpkg.out.splitlines()
                 if len(ln.split()) == 2 and ln.split()[1] == "installed"}
    states: dict[str, PackageState] = {}
    missing = [n for n in PACKAGES if n not in installed and not Path(PACKAGES[n]).exists()]
    candidates = parse_apt_policy(run_cmd(["apt-cache", "policy", *missing]).out) if missing else {}
    for name in PACKAGES:
        states[name] = PackageState(name not in missing, candidates.get(name))
    return states, lists_present


def parse_apt_policy(text: str) -> dict[str, str | None]:
    """`apt-cache policy a b` -> {"a": "1.2-3", "b": None} (None: "Candidate: (none)")."""
    out: dict[str, str | None] = {}
    current = ""
    for line in text.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1]
        elif current and line.strip().startswith("Candidate:"):
            value = line.split(":", 1)[1].strip()
            out[current] = None if value in ("", "(none)") else value
    return out


def probe_link(kind: str) -> Cmd:
    """Add a temporary veth pair or bridge and delete it again."""
    name = f"dr{os.getpid() % 10**7}{kind[0]}"
    argv = ["ip", "link", "add", name, "type", kind]
    if kind == "veth":
        argv += ["peer", "name", name + "p"]
    c = run_cmd(argv)
    if c.ok:
        gone = run_cmd(["ip", "link", "del", name])
        if not gone.ok:
            return Cmd(1, gone.out, f"added {name} but could not delete it ({gone.why()}): "
                       f"ip link del {name}")
    return c


def parse_tools(script: str, cache: Path) -> tuple[Tool, ...]:
    """The `$cache/<name>-$<var>_version` directories hack/build-tools.sh fills, in script order."""
    versions = dict(re.findall(r'^(\w+)_version="([^"]+)"', script, re.M))
    tools: list[Tool] = []
    seen: set[str] = set()
    for name, var in re.findall(r"\$cache/([A-Za-z0-9_.-]+?)-\$\{?(\w+?)_version\}?", script):
        if var not in versions or name in seen:
            continue
        seen.add(name)
        directory = cache / f"{name}-{versions[var]}"
        tools.append(Tool(name, versions[var], (directory / ".complete").is_file()))
    return tuple(tools)


def probe_cache() -> CacheProbe:
    script = BUILD_TOOLS.read_text() if BUILD_TOOLS.is_file() else ""
    installed = VENV / ".installed"
    pyproject = REPO / "pyproject.toml"
    stale = installed.is_file() and pyproject.is_file() and (
        pyproject.stat().st_mtime > installed.stat().st_mtime)
    makefile = REPO / "Makefile"
    images_expected = makefile.is_file() and re.search(
        r"^images\s*:", makefile.read_text(), re.M) is not None
    pushed = len(list(IMAGES_CACHE.glob("*.pushed"))) if IMAGES_CACHE.is_dir() else 0
    return CacheProbe(parse_tools(script, TOOLS_CACHE), TOOLS_CACHE,
                      (VENV / "bin" / "python").exists(), installed.is_file(), stale,
                      images_expected, pushed)


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_of(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def probe_disks(cache: CacheProbe) -> tuple[DiskLocation, ...]:
    needs = disk_needs(cache)
    places = [(".venv", VENV), ("tool cache", cache.tools_cache), ("image store", CONTAINERS_STORE)]
    out = []
    for label, path in places:
        there = _existing(path)
        out.append(DiskLocation(label, path, needs[label], there.stat().st_dev, _mount_of(there),
                                shutil.disk_usage(there).free))
    return tuple(out)


def probe_meminfo() -> tuple[int, int]:
    fields: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[key] = int(parts[0])
    return fields.get("MemTotal", 0), fields.get("MemAvailable", fields.get("MemFree", 0))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def gather() -> Probes:
    """Every probe, the slow (network) ones in parallel."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        pypi = pool.submit(probe_pypi)
        goproxy = pool.submit(probe_goproxy)
        apt = pool.submit(probe_apt_reach)
        packages = pool.submit(probe_packages)
        go = pool.submit(probe_go)
        nft = pool.submit(run_cmd, ["nft", "list", "tables"])
        veth, bridge = probe_link("veth"), probe_link("bridge")
        cache = probe_cache()
        mem_total, mem_avail = probe_meminfo()
        pkg_states, lists_present = packages.result()
        return Probes(
            python=probe_python(), go=go.result(), pypi=pypi.result(), goproxy=goproxy.result(),
            apt_reach=apt.result(), apt_lists_present=lists_present, disks=probe_disks(cache),
            mem_total_kib=mem_total, mem_available_kib=mem_avail,
            cores=len(os.sched_getaffinity(0)), euid=os.geteuid(),
            filesystems=_read("/proc/filesystems"), mounts=_read("/proc/self/mounts"),
            veth=veth, bridge=bridge, nft=nft.result(),
            nf_tables_module=Path("/sys/module/nf_tables").exists(),
            packages=pkg_states, cache=cache,
        )
