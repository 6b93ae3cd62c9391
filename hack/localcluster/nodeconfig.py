"""Pure builders for the real node's configuration files (containerd, CNI, kubelet, kube-proxy).

Every value that is not a Kubernetes default has a reason next to it: most come from running on
a VM without CAP_SYS_RESOURCE, on cgroup v1, with no registry and no way to reach the internet
(see docs/real-node.md). The functions take paths and return text, so they are unit-tested
without starting anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

NODE_NAME = "real-node-1"
NODE_LABEL = "tryon.dev/real-node"
BRIDGE = "rn-cni0"
NODE_IP = "10.85.0.1"
POD_CIDR = "10.85.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/tryon/pause:3.10"
FAKE_GPUS = 8  # room for blue + green of a few TryOnModels while old pods drain


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its files: runtime state under ``state``, images under ``image_root``.

    The containerd root (content store and unpacked snapshots) lives outside the state dir so
    images imported once survive ``cluster-down``; everything else is thrown away.
    """

    state: Path
    image_root: Path

    @property
    def containerd_socket(self) -> Path:
        return self.state / "run" / "containerd.sock"

    @property
    def containerd_state(self) -> Path:
        return self.state / "containerd-state"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def pod_logs(self) -> Path:
        return self.state / "pod-logs"

    @property
    def empty_resolv_conf(self) -> Path:
        return self.state / "resolv.conf"

    @property
    def registry_hosts(self) -> Path:
        """containerd's ``config_path``: one ``<host:port>/hosts.toml`` per registry."""
        return self.state / "certs.d"


def containerd_toml(paths: NodePaths, runc: str, cni_bin_dir: str) -> str:
    """containerd v2 config: CRI on a private socket, overlayfs, pinned pause image, registries
    from ``hosts.toml`` files, and layer blobs dropped once unpacked (half the disk of a pull)."""
    quoted = json.dumps
    return f"""version = 3
root = {quoted(str(paths.image_root))}
state = {quoted(str(paths.containerd_state))}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = {quoted(str(paths.containerd_socket))}

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  discard_unpacked_layers = true
  # The sandbox image is imported (built here from the pause binary) and never garbage-collected.
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {quoted(PAUSE_IMAGE)}
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = {quoted(str(paths.registry_hosts))}

[plugins."io.containerd.cri.v1.runtime"]
  # Without CAP_SYS_RESOURCE a negative oom_score_adj is refused; clamp instead of failing.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = {quoted(runc)}
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{quoted(cni_bin_dir)}]
    conf_dir = {quoted(str(paths.cni_conf_dir))}
    max_conf_num = 1
"""


def cni_conflist(paths: NodePaths) -> str:
    """One bridge network; addresses from host-local IPAM kept in the node's state dir."""
    config = {
        "cniVersion": "1.0.0",
        "name": "tryon-realnode",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # Pods talk to the host and each other only; see the FORWARD guard in hostnet.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(paths.cni_ipam_dir),
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }
        ],
    }
    return json.dumps(config, indent=2)


def kubelet_config(paths: NodePaths, client_ca: Path, cluster_dns: str) -> str:
    """KubeletConfiguration (JSON is valid YAML) for a cgroup v1 VM without CAP_SYS_RESOURCE."""
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # v1.36 refuses cgroup v1 unless told otherwise; this VM image only has the hybrid layout.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        # The hard NOFILE limit is 20000 here and cannot be raised (no CAP_SYS_RESOURCE).
        "maxOpenFiles": 20000,
        "oomScoreAdj": 0,
        # No KUBE-FIREWALL / canary chains: kube-proxy's nftables mode is the only netfilter user.
        "makeIPTablesUtilChains": False,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": NODE_IP,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "podLogsDir": str(paths.pod_logs),
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [cluster_dns],
        # Pods must never query the VM's resolver: cluster DNS answers, or nothing does.
        "resolvConf": str(paths.empty_resolv_conf),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        # Imported images cannot be pulled again, so the image GC must never remove them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "nodeStatusUpdateFrequency": "10s",
        "serializeImagePulls": False,
        "maxPods": 60,
    }
    return json.dumps(config, indent=2)


def kube_proxy_config(kubeconfig: Path) -> str:
    """kube-proxy in nftables mode: all rules in its own tables, removed completely on teardown."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "oomScoreAdj": 0,
        # Leave the host's conntrack sysctls alone (zero means "do not set").
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
    }
    return json.dumps(config, indent=2)


def kubelet_argv(kubelet: Path, paths: NodePaths, config: Path, kubeconfig: Path) -> list[str]:
    return [
        str(kubelet),
        f"--config={config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={paths.kubelet_root}",
        f"--cert-dir={paths.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={NODE_LABEL}=true",
        "--v=1",
    ]


def forward_guard_rules() -> str:
    """nftables rules so pods reach the host and each other but never leave the machine."""
    return f"""table inet tryon-realnode {{
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ip saddr {POD_CIDR} ip daddr != {{ {POD_CIDR}, {SERVICE_CIDR} }} counter drop
  }}
}}
"""
