"""Cluster DNS for the local cluster: upstream CoreDNS serving ``cluster.local`` and nothing else.

A real kubelet node gives pods a resolv.conf that points at the cluster DNS, so
``<svc>.<ns>.svc.cluster.local`` and ``kubernetes.default`` must resolve. CoreDNS is built by
``hack/build-tools.sh coredns`` with a minimal plugin set (``hack/tools/coredns/main.go``) that has
no ``forward`` plugin: pods must never reach the VM's resolver. A name outside the served zones
is answered REFUSED by CoreDNS itself, at once (no catch-all ``.`` block is needed for that; an
empty one would answer the same REFUSED). Reverse lookups of addresses the cluster does not own
fall through past the kubernetes plugin to nothing and get SERVFAIL, also at once.

Keep host search domains out of pods' resolv.conf (give the kubelet a resolvConf without
``search``): musl stops walking the search list at the first REFUSED, so a name tried against a
host domain before its absolute form would fail.

Only the standard library is used; CoreDNS runs as User ``system:tryon-coredns`` (a client cert
with that CN, issued by the caller) bound to the read-only ClusterRole from ``coredns_rbac()``.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

CLUSTER_DOMAIN = "cluster.local"
COREDNS_USER = "system:tryon-coredns"
COREDNS_ROLE = "system:tryon-coredns"
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")


def corefile(
    listen_ip: str,
    port: int,
    kubeconfig: Path,
    health_port: int,
    ready_port: int,
    *,
    log_queries: bool = False,
) -> str:
    """The Corefile: one server block for the cluster zone and the reverse zones, on one address.

    ``bind`` keeps CoreDNS off every other interface; health and ready listen on loopback only,
    for the caller's probes. ``ttl 5`` and ``cache 5`` keep answers at most a few seconds stale
    when Services come and go during tests; ``pods insecure`` answers ``a-b-c-d.<ns>.pod`` names
    without watching pods, as kube-dns did.
    """
    zones = " ".join(f"{zone}:{port}" for zone in (CLUSTER_DOMAIN, *REVERSE_ZONES))
    reverse = " ".join(REVERSE_ZONES)
    log = "    log\n" if log_queries else ""
    return (
        f"{zones} {{\n"
        f"    bind {listen_ip}\n"
        f"    errors\n"
        f"{log}"
        f"    health 127.0.0.1:{health_port}\n"
        f"    ready 127.0.0.1:{ready_port}\n"
        f"    loadbalance\n"
        f"    cache 5\n"
        f"    kubernetes {CLUSTER_DOMAIN} {reverse} {{\n"
        f"        kubeconfig {kubeconfig}\n"
        f"        pods insecure\n"
        f"        fallthrough {reverse}\n"
        f"        ttl 5\n"
        f"    }}\n"
        f"}}\n"
    )


def coredns_rbac() -> list[dict[str, object]]:
    """The read-only access CoreDNS 1.15's kubernetes plugin uses, bound to its user.

    It lists and watches Services, EndpointSlices and Namespaces. It reads no core Endpoints any
    more, and watches Pods only for ``pods verified``; with ``pods insecure`` (see corefile())
    neither is needed, so neither is granted.
    """
    watch = ["list", "watch"]
    role: dict[str, object] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": COREDNS_ROLE},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "namespaces"], "verbs": watch},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": watch},
        ],
    }
    binding: dict[str, object] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": COREDNS_ROLE},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": COREDNS_ROLE,
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
        ],
    }
    return [role, binding]


def coredns_argv(binary: Path, conf: Path) -> list[str]:
    """The command line that starts CoreDNS on ``conf`` (its listen address is in the file)."""
    return [str(binary), "-conf", str(conf)]


def wait_ready(ready_port: int, timeout: float = 30.0) -> float:
    """Blocks until ``/ready`` says 200 (the kubernetes plugin has synced), returns seconds taken.

    Raises TimeoutError with the last answer seen, so a missing RBAC rule or a bad kubeconfig
    shows up as a clear failure instead of pods failing to resolve later.
    """
    url = f"http://127.0.0.1:{ready_port}/ready"
    start = time.monotonic()
    deadline = start + timeout
    last = "no answer"
    delay = 0.05
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}: {err.read().decode(errors='replace').strip()}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise TimeoutError(f"CoreDNS not ready on {url} after {timeout:.0f}s: {last}")
