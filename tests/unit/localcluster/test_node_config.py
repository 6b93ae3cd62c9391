"""The real node's config builders: the settings this VM needs, nothing leaking to the host."""

from __future__ import annotations

import io
import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from hack.localcluster import nodeconfig as cfg
from hack.localcluster import realnode, registry
from hack.localcluster.realnode import pause_image_archive

pytestmark = pytest.mark.unit

PATHS = cfg.NodePaths(state=Path("/state/realnode"), image_root=Path("/cache/containerd"))


def test_containerd_keeps_images_outside_the_state_dir_and_state_inside_it() -> None:
    config = tomllib.loads(cfg.containerd_toml(PATHS, "/usr/sbin/runc", "/usr/lib/cni"))
    assert config["root"] == "/cache/containerd"
    assert config["state"].startswith("/state/realnode/")
    assert config["grpc"]["address"] == "/state/realnode/run/containerd.sock"


def test_containerd_pins_the_sandbox_image_and_clamps_oom_score_adj() -> None:
    config = tomllib.loads(cfg.containerd_toml(PATHS, "/usr/sbin/runc", "/usr/lib/cni"))
    plugins = config["plugins"]
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == cfg.PAUSE_IMAGE
    assert plugins["io.containerd.cri.v1.runtime"]["restrict_oom_score_adj"] is True
    runc = plugins["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["BinaryName"] == "/usr/sbin/runc"


def test_containerd_reads_registry_hosts_from_the_state_dir_and_drops_unpacked_blobs() -> None:
    config = tomllib.loads(cfg.containerd_toml(PATHS, "/usr/sbin/runc", "/usr/lib/cni"))
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["registry"]["config_path"] == "/state/realnode/certs.d"
    assert images["discard_unpacked_layers"] is True


def test_stale_images_are_other_commits_and_the_aliases_only_they_had() -> None:
    repo = registry.REPOSITORY
    images = [
        (f"{repo}/tryon-renderer:new", "sha256:aa"),
        (f"{repo}/tryon-renderer@sha256:aa", "sha256:aa"),
        ("sha256:config-aa", "sha256:aa"),
        (f"{repo}/tryon-renderer:old", "sha256:bb"),
        (f"{repo}/tryon-renderer@sha256:bb", "sha256:bb"),
        ("sha256:config-bb", "sha256:bb"),
        ("localhost/tryon/tryon-renderer:dev", "sha256:cc"),
        ("localhost/tryon/pause:3.10", "sha256:dd"),
        ("sha256:config-dd", "sha256:dd"),
    ]
    stale = realnode.stale_images(images, {f"{repo}/tryon-renderer:new"})
    assert sorted(stale) == sorted([
        f"{repo}/tryon-renderer:old", f"{repo}/tryon-renderer@sha256:bb", "sha256:config-bb",
        "localhost/tryon/tryon-renderer:dev",
    ])  # fmt: skip


def test_an_image_the_registry_serves_under_the_new_commit_stays_whatever_tag_pulled_it() -> None:
    repo = registry.REPOSITORY
    images = [
        (f"{repo}/tryon-renderer:old", "sha256:aa"),
        (f"{repo}/tryon-renderer@sha256:aa", "sha256:aa"),
        ("sha256:config-aa", "sha256:aa"),
    ]
    assert realnode.stale_images(images, {f"{repo}/tryon-renderer:new"}, {"sha256:aa"}) == []


def test_cni_uses_the_node_bridge_without_masquerade_and_keeps_ipam_in_state() -> None:
    (bridge,) = json.loads(cfg.cni_conflist(PATHS))["plugins"]
    assert bridge["bridge"] == cfg.BRIDGE
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == "/state/realnode/cni/ipam"
    assert bridge["ipam"]["ranges"] == [[{"subnet": cfg.POD_CIDR, "gateway": cfg.NODE_IP}]]


def test_kubelet_runs_on_cgroup_v1_without_raising_limits() -> None:
    config = json.loads(cfg.kubelet_config(PATHS, Path("/pki/ca.crt"), cfg.NODE_IP))
    assert config["failCgroupV1"] is False
    assert config["oomScoreAdj"] == 0
    assert config["maxOpenFiles"] <= 20000
    assert config["makeIPTablesUtilChains"] is False


def test_kubelet_points_pods_at_cluster_dns_and_never_at_the_host_resolver() -> None:
    config = json.loads(cfg.kubelet_config(PATHS, Path("/pki/ca.crt"), "10.85.0.1"))
    assert config["clusterDNS"] == ["10.85.0.1"]
    assert config["resolvConf"] == str(PATHS.empty_resolv_conf)
    assert config["clusterDomain"] == "cluster.local"


def test_kubelet_requires_client_certificates_from_the_cluster_ca() -> None:
    config = json.loads(cfg.kubelet_config(PATHS, Path("/pki/ca.crt"), cfg.NODE_IP))
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == "/pki/ca.crt"
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0


def test_kubelet_never_garbage_collects_imported_images() -> None:
    config = json.loads(cfg.kubelet_config(PATHS, Path("/pki/ca.crt"), cfg.NODE_IP))
    assert config["imageGCHighThresholdPercent"] == 100


def test_kube_proxy_uses_nftables_and_leaves_conntrack_sysctls_alone() -> None:
    config = json.loads(cfg.kube_proxy_config(Path("/state/kube-proxy.kubeconfig")))
    assert config["mode"] == "nftables"
    assert all(not value or value == "0s" for value in config["conntrack"].values())
    assert config["nodePortAddresses"] == [f"{cfg.NODE_IP}/32"]


def test_kubelet_argv_labels_the_node_as_real() -> None:
    argv = cfg.kubelet_argv(Path("/bin/kubelet"), PATHS, Path("/c.json"), Path("/k"))
    assert f"--node-labels={cfg.NODE_LABEL}=true" in argv
    assert f"--hostname-override={cfg.NODE_NAME}" in argv
    assert f"--node-ip={cfg.NODE_IP}" in argv


def test_forward_guard_drops_pod_traffic_leaving_the_machine() -> None:
    rules = cfg.forward_guard_rules()
    assert "hook forward" in rules
    assert f"ip saddr {cfg.POD_CIDR}" in rules and "drop" in rules


def test_pause_archive_is_a_docker_archive_with_one_layer_holding_pause() -> None:
    blob = io.BytesIO(pause_image_archive(b"\x7fELF-pause", "x/p:1"))
    with tarfile.open(fileobj=blob) as archive:
        _check_pause_archive(archive)


def _check_pause_archive(archive: tarfile.TarFile) -> None:
    manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["x/p:1"]
    config = json.load(archive.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=archive.extractfile("layer.tar")) as layer:
        member = layer.getmember("pause")
        assert member.mode == 0o755
        assert layer.extractfile(member).read() == b"\x7fELF-pause"  # type: ignore[union-attr]
