"""hack/doctor: every check's verdict from faked probe results (nothing here touches the machine,
except the few tests of the probe helpers, which run harmless local commands)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from hack import doctor as d

pytestmark = pytest.mark.unit

OK = d.Cmd(0)
GB = 10**9

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
"""
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
V1_MOUNTS = "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"


def py(version: tuple[int, int, int] = (3, 11, 7), ensurepip: bool = True) -> Any:
    return d.PythonProbe(version, "/usr/bin/python3", ensurepip)


def go(version: str = "go1.26.8", required: str = "1.26.1", toolchain: str = "auto",
       found: bool = True) -> Any:
    return d.GoProbe(found, version, toolchain, "https://proxy.golang.org,direct", required)


def tool(name: str, complete: bool = True, version: str = "v1") -> Any:
    return d.Tool(name, version, complete)


def cache(tools: tuple[Any, ...] | list[Any] = (), venv_installed: bool = True,
          venv_stale: bool = False, images_expected: bool = False, images_pushed: int = 0) -> Any:
    return d.CacheProbe(tuple(tools), Path("/c/bin"), venv_installed, venv_installed, venv_stale,
                        images_expected, images_pushed)


def disk(label: str = "/x", need_gb: float = 1.0, free_gb: float = 100.0, device: int = 1,
         mount: str = "/") -> Any:
    return d.DiskLocation(label, Path(label), need_gb, device, Path(mount), int(free_gb * GB))


def healthy_probes(**changes: Any) -> Any:
    probes = d.Probes(
        python=py(), go=go(), pypi=OK, goproxy=OK, apt_reach=OK, apt_lists_present=True,
        disks=(disk(".venv"), disk("tool cache")), mem_total_kib=23 * 2**20,
        mem_available_kib=20 * 2**20, cores=2, euid=0, filesystems="nodev\toverlay\n",
        mounts=V2_MOUNTS, veth=OK, bridge=OK, nft=OK, nf_tables_module=True,
        packages={"runc": d.PackageState(True, "1.1.5")},
        cache=cache([tool("etcd"), tool("kubernetes")]),
    )
    return dataclasses.replace(probes, **changes)


# --- the verdict line and the exit status -------------------------------------------------


def test_verdict_line_is_level_check_then_message() -> None:
    assert d.fail("go", "not found").line() == "FAIL go        not found"


def test_exit_code_is_one_when_any_check_fails() -> None:
    assert d.exit_code([d.ok("a", ""), d.fail("b", "")]) == 1


def test_exit_code_is_zero_with_only_warnings() -> None:
    assert d.exit_code([d.ok("a", ""), d.warn("b", "")]) == 0


def test_healthy_machine_has_no_fail_and_exits_zero() -> None:
    verdicts = d.check_all(healthy_probes())
    assert [v for v in verdicts if v.level == "FAIL"] == []
    assert d.exit_code(verdicts) == 0


def test_one_failed_probe_makes_the_whole_run_fail() -> None:
    verdicts = d.check_all(healthy_probes(mem_total_kib=2**20))
    assert d.exit_code(verdicts) == 1


def test_node_checks_fail_when_the_tree_builds_a_real_node():
    probes = healthy_probes(euid=1000, cache=cache([tool("etcd"), tool("containerd")]))
    [root] = [v for v in d.check_all(probes) if v.check == "root"]
    assert root.level == "FAIL"


def test_node_checks_only_warn_while_the_tree_builds_no_real_node():
    probes = healthy_probes(euid=1000, filesystems="", cache=cache([tool("etcd")]))
    levels = {v.check: v.level for v in d.check_all(probes)}
    assert levels["root"] == "warn" and levels["overlayfs"] == "warn"


def test_other_checks_still_fail_without_a_real_node():
    probes = healthy_probes(go=go(found=False), cache=cache([tool("etcd")]))
    assert d.exit_code(d.check_all(probes)) == 1


# --- python ---------------------------------------------------------------------------------


def test_python_311_is_ok() -> None:
    assert d.check_python(py(), venv_exists=False).level == "ok"


def test_python_older_than_311_fails_and_says_how_to_pick_311() -> None:
    v = d.check_python(py((3, 10, 12)), venv_exists=False)
    assert v.level == "FAIL" and "PYTHON=python3.11" in v.message


def test_python_newer_than_311_warns() -> None:
    assert d.check_python(py((3, 12, 3)), venv_exists=False).level == "warn"


def test_python_without_ensurepip_fails_before_a_venv_exists() -> None:
    v = d.check_python(py(ensurepip=False), venv_exists=False)
    assert v.level == "FAIL" and "python3.11-venv" in v.message


def test_python_without_ensurepip_is_fine_once_the_venv_exists() -> None:
    assert d.check_python(py(ensurepip=False), venv_exists=True).level == "ok"


# --- go -------------------------------------------------------------------------------------


def test_go_missing_fails_with_where_to_get_it() -> None:
    v = d.check_go(go(found=False))
    assert v.level == "FAIL" and "go.dev/dl" in v.message


def test_go_older_than_1_26_fails() -> None:
    assert d.check_go(go("go1.25.4")).level == "FAIL"


def test_go_meeting_the_go_mod_line_is_ok() -> None:
    assert d.check_go(go("go1.26.8", required="1.26.1")).level == "ok"


def test_go_below_the_go_mod_line_warns_that_it_downloads_a_toolchain() -> None:
    v = d.check_go(go("go1.26.0", required="1.26.1", toolchain="auto"))
    assert v.level == "warn" and "1.26.1" in v.message


def test_go_below_the_go_mod_line_fails_with_gotoolchain_local() -> None:
    assert d.check_go(go("go1.26.0", required="1.26.1", toolchain="local")).level == "FAIL"


def test_go_with_an_unreadable_version_warns() -> None:
    assert d.check_go(go("devel +abc")).level == "warn"


def test_parse_go_version_reads_release_candidates_and_short_versions() -> None:
    assert d.parse_go_version("go1.27rc1") == (1, 27, 0)
    assert d.parse_go_version("1.26") == (1, 26, 0)
    assert d.parse_go_version("go1.26.8") == (1, 26, 8)
    assert d.parse_go_version("devel") is None


# --- registries -----------------------------------------------------------------------------


def test_pypi_answering_is_ok() -> None:
    assert d.check_pypi(OK, venv_ready=False).level == "ok"


def test_pypi_unreachable_fails_before_the_venv_is_installed() -> None:
    v = d.check_pypi(d.Cmd(1, "ERROR: connection refused"), venv_ready=False)
    assert v.level == "FAIL" and "connection refused" in v.message


def test_pypi_unreachable_only_warns_when_the_venv_is_installed() -> None:
    assert d.check_pypi(d.Cmd(None, error="timed out"), venv_ready=True).level == "warn"


def test_goproxy_answering_is_ok() -> None:
    assert d.check_goproxy(OK, go(), tools_ready=False).level == "ok"


def test_goproxy_unreachable_fails_while_tools_remain_to_build() -> None:
    v = d.check_goproxy(d.Cmd(1, "dial tcp: i/o timeout"), go(), tools_ready=False)
    assert v.level == "FAIL" and "i/o timeout" in v.message


def test_goproxy_unreachable_only_warns_when_every_tool_is_cached() -> None:
    assert d.check_goproxy(d.Cmd(1, "404"), go(), tools_ready=True).level == "warn"


def test_goproxy_is_not_blamed_when_go_itself_is_missing() -> None:
    v = d.check_goproxy(d.Cmd(None, error="go: not found"), go(found=False), tools_ready=False)
    assert v.level == "warn"


def test_apt_answering_is_ok() -> None:
    assert d.check_apt(OK, missing=[]).level == "ok"


def test_apt_unreachable_fails_when_packages_must_be_installed() -> None:
    v = d.check_apt(d.Cmd(None, error="no answer within 5 s"), missing=["buildah"])
    assert v.level == "FAIL" and "buildah" in v.message


def test_apt_unreachable_only_warns_when_everything_is_installed() -> None:
    assert d.check_apt(d.Cmd(1, "E: Failed to fetch"), missing=[]).level == "warn"


# --- disk -----------------------------------------------------------------------------------


def test_disk_with_room_to_spare_is_ok() -> None:
    assert [v.level for v in d.check_disks([disk(need_gb=7, free_gb=50)])] == ["ok"]


def test_disk_with_less_free_than_the_build_needs_fails() -> None:
    [v] = d.check_disks([disk(need_gb=20, free_gb=12)])
    assert v.level == "FAIL" and "12.0 GB free" in v.message


def test_disk_with_room_but_no_margin_warns() -> None:
    [v] = d.check_disks([disk(need_gb=20, free_gb=20 + d.DISK_MARGIN_GB - 1)])
    assert v.level == "warn"


def test_disk_needs_of_locations_on_one_filesystem_add_up() -> None:
    verdicts = d.check_disks([disk(".venv", 7, free_gb=10), disk("tool cache", 6, free_gb=10)])
    assert [v.level for v in verdicts] == ["FAIL"]
    assert ".venv, tool cache" in verdicts[0].message


def test_disk_locations_on_separate_filesystems_get_a_line_each() -> None:
    verdicts = d.check_disks([disk(".venv", 7, 50, device=1, mount="/"),
                              disk("image store", 20, 10, device=2, mount="/var")])
    assert [v.level for v in verdicts] == ["ok", "FAIL"]


def test_disk_needs_the_cold_figures_on_an_empty_machine() -> None:
    needs = d.disk_needs(cache([tool("etcd", complete=False)], venv_installed=False,
                               images_expected=True))
    assert needs == {".venv": d.VENV_GB, "tool cache": d.GO_BUILD_GB, "image store": d.IMAGES_GB}


def test_disk_needs_nothing_for_what_is_already_built() -> None:
    needs = d.disk_needs(cache([tool("etcd")], images_expected=True, images_pushed=2))
    assert needs == {".venv": 0.0, "tool cache": 0.0, "image store": 0.0}


def test_disk_needs_no_image_space_while_the_makefile_builds_no_images() -> None:
    assert d.disk_needs(cache([tool("etcd")], images_expected=False))["image store"] == 0.0


# --- memory, cores, root --------------------------------------------------------------------


def test_memory_below_the_minimum_fails() -> None:
    assert d.check_memory(3 * 2**20, 3 * 2**20).level == "FAIL"


def test_memory_below_the_recommended_size_warns() -> None:
    assert d.check_memory(6 * 2**20, 5 * 2**20).level == "warn"


def test_memory_mostly_taken_by_other_processes_warns() -> None:
    assert d.check_memory(23 * 2**20, 2 * 2**20).level == "warn"


def test_memory_plenty_is_ok() -> None:
    assert d.check_memory(23 * 2**20, 20 * 2**20).level == "ok"


def test_one_core_warns_that_builds_take_longer() -> None:
    assert d.check_cores(1).level == "warn"


def test_two_cores_are_ok() -> None:
    assert d.check_cores(2).level == "ok"


def test_not_root_fails() -> None:
    v = d.check_root(1000)
    assert v.level == "FAIL" and "root" in v.message


def test_root_is_ok() -> None:
    assert d.check_root(0).level == "ok"


# --- kernel features ------------------------------------------------------------------------


def test_overlayfs_listed_is_ok() -> None:
    assert d.check_overlayfs("nodev\tsysfs\nnodev\toverlay\n\text4\n").level == "ok"


def test_overlayfs_missing_fails_with_modprobe_hint() -> None:
    v = d.check_overlayfs("nodev\tsysfs\n\text4\n")
    assert v.level == "FAIL" and "modprobe overlay" in v.message


def test_veth_created_and_deleted_is_ok() -> None:
    assert d.check_veth(OK, is_root=True).level == "ok"


def test_veth_unknown_to_the_kernel_fails() -> None:
    v = d.check_veth(d.Cmd(2, "Error: Unknown device type."), is_root=True)
    assert v.level == "FAIL" and "kernel" in v.message


def test_veth_refused_to_root_fails_naming_cap_net_admin() -> None:
    v = d.check_veth(d.Cmd(2, "RTNETLINK answers: Operation not permitted"), is_root=True)
    assert v.level == "FAIL" and "CAP_NET_ADMIN" in v.message


def test_veth_not_probed_without_root_only_warns() -> None:
    assert d.check_veth(d.Cmd(2, "Operation not permitted"), is_root=False).level == "warn"


def test_veth_without_the_ip_tool_warns_to_install_iproute2() -> None:
    v = d.check_veth(d.Cmd(None, error="ip: not found"), is_root=True)
    assert v.level == "warn" and "iproute2" in v.message


def test_veth_left_behind_fails_with_the_cleanup_command() -> None:
    v = d.check_veth(d.Cmd(1, error="added dr1v but could not delete it: ip link del dr1v"),
                     is_root=True)
    assert v.level == "FAIL" and "ip link del dr1v" in v.message


def test_bridge_created_and_deleted_is_ok() -> None:
    assert d.check_bridge(OK, is_root=True).level == "ok"


def test_bridge_unknown_to_the_kernel_fails() -> None:
    assert d.check_bridge(d.Cmd(2, "Error: Unknown device type."), is_root=True).level == "FAIL"


def test_nft_list_tables_working_is_ok() -> None:
    assert d.check_nftables(OK, module_loaded=True, is_root=True).level == "ok"


def test_nft_failing_as_root_fails() -> None:
    v = d.check_nftables(d.Cmd(1, "Error: Could not process rule: Protocol not supported"),
                         module_loaded=False, is_root=True)
    assert v.level == "FAIL" and "nf_tables" in v.message


def test_nft_not_probed_without_root_only_warns() -> None:
    assert d.check_nftables(d.Cmd(1, "Operation not permitted"), False, is_root=False).level == (
        "warn")


def test_nft_tool_missing_is_ok_when_the_kernel_has_nf_tables() -> None:
    assert d.check_nftables(d.Cmd(None, error="nft: not found"), True, True).level == "ok"


def test_nft_tool_missing_without_the_module_warns() -> None:
    assert d.check_nftables(d.Cmd(None, error="nft: not found"), False, True).level == "warn"


def test_cgroup_v2_is_ok() -> None:
    v = d.check_cgroups(V2_MOUNTS)
    assert v.level == "ok" and "v2" in v.message


def test_cgroup_v1_hybrid_warns_that_kubelet_needs_failcgroupv1_false() -> None:
    v = d.check_cgroups(HYBRID_MOUNTS)
    assert v.level == "warn" and "hybrid" in v.message and "failCgroupV1: false" in v.message


def test_cgroup_v1_only_warns_too() -> None:
    assert d.cgroup_layout(V1_MOUNTS) == "v1"
    assert d.check_cgroups(V1_MOUNTS).level == "warn"


def test_no_cgroup_mount_fails() -> None:
    assert d.check_cgroups("proc /proc proc rw 0 0\n").level == "FAIL"


# --- Debian packages ------------------------------------------------------------------------


def test_installed_package_is_ok() -> None:
    [v] = d.check_packages({"runc": d.PackageState(True, None)}, lists_present=True)
    assert v.level == "ok" and v.message == "runc"


def test_missing_package_with_a_candidate_warns_that_ci_installs_it() -> None:
    [v] = d.check_packages({"buildah": d.PackageState(False, "1.28.2")}, lists_present=True)
    assert v.level == "warn" and "will be installed by .ci/run" in v.message


def test_missing_package_without_a_candidate_fails() -> None:
    [v] = d.check_packages({"mmdebstrap": d.PackageState(False, None)}, lists_present=True)
    assert v.level == "FAIL" and "apt-get install -y mmdebstrap" in v.message


def test_missing_package_before_any_apt_update_warns_to_update() -> None:
    [v] = d.check_packages({"runc": d.PackageState(False, None)}, lists_present=False)
    assert v.level == "warn" and "apt-get update" in v.message


def test_apt_policy_output_gives_candidates_and_none() -> None:
    text = ("buildah:\n  Installed: (none)\n  Candidate: 1.28.2+ds1-3\n  Version table:\n"
            "mmdebstrap:\n  Installed: (none)\n  Candidate: (none)\n")
    assert d.parse_apt_policy(text) == {"buildah": "1.28.2+ds1-3", "mmdebstrap": None}


def test_missing_packages_lists_only_the_absent_ones() -> None:
    packages = {"runc": d.PackageState(True, None), "buildah": d.PackageState(False, "1")}
    assert d.missing_packages(packages) == ["buildah"]


# --- what is cached, what a run builds ------------------------------------------------------

BUILD_TOOLS_TEXT = """\
k8s_version="v1.36.3"
etcd_version="v3.6.16"
containerd_version="v2.4.2"
go_build kubernetes "$cache/kubernetes-$k8s_version" "$ld" k8s.io/kubernetes/cmd/kube-apiserver
build_etcd() { go_build etcd "$cache/etcd-$etcd_version" "" .; }
  local out="$cache/kubernetes-node-$k8s_version"
  local out="$cache/containerd-$containerd_version"
printf '%s\\n' "$cache/kubernetes-$k8s_version" "$cache/etcd-$etcd_version"
"""


def test_tools_are_read_from_the_build_script_with_their_cache_state(tmp_path: Path) -> None:
    (tmp_path / "etcd-v3.6.16").mkdir()
    (tmp_path / "etcd-v3.6.16" / ".complete").touch()
    (tmp_path / "kubernetes-v1.36.3.partial").mkdir()  # a half build does not count
    tools = d.parse_tools(BUILD_TOOLS_TEXT, tmp_path)
    assert [(t.name, t.version, t.complete) for t in tools] == [
        ("kubernetes", "v1.36.3", False), ("etcd", "v3.6.16", True),
        ("kubernetes-node", "v1.36.3", False), ("containerd", "v2.4.2", False)]


def test_the_real_build_script_names_the_control_plane_tools(tmp_path: Path) -> None:
    names = {t.name for t in d.parse_tools(d.BUILD_TOOLS.read_text(), tmp_path)}
    assert {"kubernetes", "etcd", "kwok", "helm"} <= names


def test_build_plan_lists_only_the_tools_not_yet_built_with_their_minutes() -> None:
    plan = d.build_plan(cache([tool("etcd"), tool("kubernetes", complete=False, version="v1.36.3"),
                               tool("containerd", complete=False, version="v2.4.2")]))
    assert plan == [("kubernetes-v1.36.3", d.TOOL_BUILD_MIN["kubernetes"]),
                    ("containerd-v2.4.2", d.TOOL_BUILD_MIN["containerd"])]


def test_build_plan_uses_the_default_estimate_for_an_unknown_tool() -> None:
    assert d.build_plan(cache([tool("coredns", complete=False)])) == [
        ("coredns-v1", d.TOOL_BUILD_MIN_DEFAULT)]


def test_build_plan_includes_the_venv_when_it_is_not_installed() -> None:
    assert d.build_plan(cache([tool("etcd")], venv_installed=False)) == [
        (".venv", d.VENV_BUILD_MIN)]


def test_build_plan_includes_a_venv_update_when_pyproject_changed() -> None:
    [(what, _)] = d.build_plan(cache([tool("etcd")], venv_stale=True))
    assert "pyproject.toml changed" in what


def test_build_plan_includes_images_only_when_the_makefile_builds_them() -> None:
    assert d.build_plan(cache([tool("etcd")], images_expected=False)) == []
    assert d.build_plan(cache([tool("etcd")], images_expected=True)) == [
        ("images", d.IMAGES_BUILD_MIN)]


def test_cached_images_are_not_rebuilt() -> None:
    assert d.build_plan(cache([tool("etcd")], images_expected=True, images_pushed=2)) == []


def test_everything_cached_says_nothing_to_build() -> None:
    verdicts = d.check_cache(cache([tool("etcd"), tool("helm")]), cores=2)
    assert [v.check for v in verdicts] == ["cache", "build"]
    assert "nothing to build" in verdicts[1].message


def test_build_line_names_what_is_built_and_the_total_minutes() -> None:
    build = d.check_cache(cache([tool("kubernetes", complete=False)], venv_installed=False),
                          cores=2)[-1]
    total = d.TOOL_BUILD_MIN["kubernetes"] + d.VENV_BUILD_MIN
    assert "kubernetes-v1" in build.message and ".venv" in build.message
    assert f"~{total:.0f} min in all" in build.message


def test_build_estimate_doubles_on_one_core() -> None:
    build = d.check_cache(cache([tool("kubernetes", complete=False)]), cores=1)[-1]
    assert f"~{2 * d.TOOL_BUILD_MIN['kubernetes']:.0f} min" in build.message


def test_cache_line_lists_what_is_already_built() -> None:
    line = d.check_cache(cache([tool("etcd"), tool("helm", complete=False)], images_pushed=2),
                         cores=2)[0]
    assert line.message == "cached: .venv, etcd-v1, 2 pushed image(s)"


def test_an_unreadable_tool_list_warns() -> None:
    assert d.check_cache(cache([]), cores=2)[0].level == "warn"


# --- probe helpers --------------------------------------------------------------------------


def test_run_cmd_reports_a_missing_program_without_raising() -> None:
    c = d.run_cmd(["no-such-program-for-the-doctor"])
    assert c.rc is None and "not found" in c.error


def test_run_cmd_gives_up_after_its_timeout() -> None:
    c = d.run_cmd([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert c.rc is None and "no answer" in c.error


def test_retried_probe_is_asked_again_after_a_failure() -> None:
    answers = [d.Cmd(1, "transient"), OK]
    assert d.retried(lambda: answers.pop(0), attempts=2, backoff_s=0).ok
    assert answers == []


def test_retried_probe_is_not_asked_again_after_a_success() -> None:
    calls: list[int] = []

    def probe() -> Any:
        calls.append(1)
        return OK

    d.retried(probe, attempts=3, backoff_s=0)
    assert calls == [1]


def test_cmd_why_prefers_the_error_then_the_last_output_line() -> None:
    assert d.Cmd(None, "x", error="timed out").why() == "timed out"
    assert d.Cmd(1, "first\nERROR: last\n").why() == "ERROR: last"
    assert d.Cmd(3).why() == "exit status 3"
