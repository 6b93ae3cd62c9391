"""What the repository tracks: source and docs, never downloaded artifacts or build outputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
MAX_TRACKED_BYTES = 1024 * 1024


def test_no_tracked_file_is_over_one_mebibyte() -> None:
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode()
    files = [REPO / name for name in listed.split("\0") if name]
    assert files, "git ls-files listed nothing: not a checkout?"
    too_big = {
        str(path.relative_to(REPO)): path.stat().st_size
        for path in files
        if path.is_file() and path.stat().st_size > MAX_TRACKED_BYTES
    }
    assert not too_big, f"tracked files over 1 MiB (artifacts belong outside git): {too_big}"
