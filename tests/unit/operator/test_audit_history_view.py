"""The ``history`` view: when each version served and why it stopped, from status.history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tryon_operator.api.models import HistoryEntry, TryOnModelStatus
from tryon_operator.ctl.history import render, served_windows

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(version, color, outcome, reason, promoted=None, finished=0, previous=None):
    return HistoryEntry(version=version, color=color, outcome=outcome, reason=reason,
                        message=f"{reason} of {version}", started_at=at(finished - 1),
                        promoted_at=None if promoted is None else at(promoted),
                        finished_at=at(finished), previous_version=previous)


STATUS = TryOnModelStatus(
    phase="Degraded", active_color="blue", active_version="2", rejected_versions=("3", "4"),
    history=(
        entry("1", "blue", "Promoted", "RolloutComplete", promoted=0, finished=2),
        entry("2", "green", "Promoted", "RolloutComplete", promoted=10, finished=12,
              previous="1"),
        entry("3", "blue", "RolledBack", "CrashLoop", promoted=20, finished=21, previous="2"),
        entry("4", "blue", "RolledBack", "SmokeTestFailed", finished=31),  # never served
    ),
)


def test_served_windows_say_when_and_why_each_version_stopped():
    windows = served_windows(STATUS)
    assert [(w.version, w.color, w.since, w.until, w.why_stopped, w.resumed)
            for w in windows] == [
        ("1", "blue", at(0), at(10), "replaced by version 2", False),
        ("2", "green", at(10), at(20), "replaced by version 3", False),
        ("3", "blue", at(20), at(21), "rolled back: CrashLoop", False),
        ("2", "green", at(21), None, "serving", True),  # traffic came back to the warm colour
    ]


def test_render_lists_history_served_windows_and_mlflow_tags():
    text = render("dress", "shop", STATUS, {"3": {"tryon.dev/rejected": "shop/dress: CrashLoop"}})
    assert text.splitlines()[0] == "TryOnModel shop/dress: phase Degraded, active blue (version 2)"
    assert "rejected versions: 3, 4" in text
    assert "4        blue    RolledBack  2026-11-22 03:30:00  -" in text
    assert "version 1 on blue: 2026-11-22 03:00:00 .. 2026-11-22 03:10:00 (replaced by version 2)" \
        in text
    assert "version 2 on green again: 2026-11-22 03:21:00 .. now (serving)" in text
    assert "  tryon.dev/rejected = shop/dress: CrashLoop" in text


def test_the_version_still_serving_has_no_end():
    status = TryOnModelStatus(active_color="green", active_version="2",
                              history=STATUS.history[:2])
    assert served_windows(status)[-1].until is None
    assert "(serving)" in render("dress", "shop", status)
