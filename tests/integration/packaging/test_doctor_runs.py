"""`python3 -m hack.doctor` (what `make doctor` runs) on this machine: exit 0, no FAIL, quick."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[3]
LINE = re.compile(r"^(ok  |warn|FAIL) \S+ +\S")


def test_doctor_passes_on_this_machine_in_seconds() -> None:
    python = shutil.which("python3") or sys.executable  # the plain python the Makefile uses
    started = time.monotonic()
    r = subprocess.run([python, "-m", "hack.doctor"], cwd=REPO, capture_output=True, text=True,
                       timeout=90, check=False)
    took = time.monotonic() - started
    print(r.stdout, r.stderr, sep="\n")
    lines = r.stdout.splitlines()
    checks = [ln for ln in lines if LINE.match(ln)]
    assert [ln for ln in checks if ln.startswith("FAIL")] == []
    assert r.returncode == 0, r.stdout + r.stderr
    assert {ln.split()[1] for ln in checks} >= {
        "python", "go", "pypi", "goproxy", "apt", "disk", "memory", "cores", "root", "overlayfs",
        "veth", "bridge", "nftables", "cgroups", "package", "cache", "build"}
    # the header, one line per check, the summary: nothing else (no pip or go chatter)
    assert len(lines) == len(checks) + 2, r.stdout
    assert lines[-1].startswith("doctor: ") and " 0 FAIL " in lines[-1]
    assert took < 60, f"doctor took {took:.0f} s"
