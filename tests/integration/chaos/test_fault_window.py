"""The crash fault hits a rollout only while its rollback window is open by the operator's own
record: chaos seed 20261211, iteration 48 crashed the new colour just after a leaderless window
ended, when no old colour was left to go back to, and counted it as a rollout failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.chaos.engine import ROLLBACK_WINDOW_SECONDS, window_over

pytestmark = pytest.mark.unit


def flipped(seconds_ago: float) -> dict[str, str]:
    at = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    return {"phase": "PostPromotion", "promotedAt": at.isoformat().replace("+00:00", "Z")}


def test_a_rollout_just_flipped_is_inside_its_window() -> None:
    assert not window_over(flipped(0.5))


def test_a_rollout_whose_window_ended_while_nobody_led_is_over() -> None:
    assert window_over(flipped(ROLLBACK_WINDOW_SECONDS + 1))


def test_the_last_second_of_the_window_counts_as_over() -> None:
    assert window_over(flipped(ROLLBACK_WINDOW_SECONDS - 0.5))


def test_a_rollout_before_its_flip_is_never_over() -> None:
    assert not window_over({"phase": "Progressing"})
