"""The serving shape: candidates, when a batch stops growing, which shape wins, the sweep."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from tryon_renderer.shape import (
    Layout,
    Measurement,
    ShapePins,
    SweepLimits,
    candidate_batches,
    candidate_layouts,
    choose,
    stop_growing,
    sweep,
)

pytestmark = pytest.mark.unit

PER_CORE = Layout(2, 1)
ALL_CORES = Layout(1, 2)


def m(batch: int, images_per_s: float, p99_ms: float, layout: Layout = PER_CORE) -> Measurement:
    return Measurement(layout, batch, images_per_s, p99_ms)


@pytest.mark.parametrize(
    ("device", "cores", "pins", "expected"),
    [
        ("cpu", 2, ShapePins(), [Layout(2, 1), Layout(1, 2)]),
        ("cpu", 1, ShapePins(), [Layout(1, 1)]),
        ("cpu", 8, ShapePins(), [Layout(8, 1), Layout(1, 8), Layout(4, 2)]),
        ("cpu", 8, ShapePins(parallel_batches=2), [Layout(2, 4)]),
        ("cpu", 8, ShapePins(torch_threads=4), [Layout(2, 4)]),
        ("cpu", 8, ShapePins(parallel_batches=3, torch_threads=1), [Layout(3, 1)]),
        ("cuda", 16, ShapePins(parallel_batches=1), [Layout(1, 16)]),
        ("cuda", 16, ShapePins(parallel_batches=1, torch_threads=2), [Layout(1, 2)]),
    ],
)
def test_layouts_measured_are_per_core_first_then_all_cores_unless_pinned(
    device: str, cores: int, pins: ShapePins, expected: list[Layout]
) -> None:
    assert candidate_layouts(device, cores, pins, default_threads=cores) == expected


@pytest.mark.parametrize(
    ("device", "pins", "expected"),
    [
        ("cpu", ShapePins(), [1, 2, 4, 8]),
        ("cuda", ShapePins(), [1, 2, 4, 8, 16, 32, 64]),
        ("cpu", ShapePins(max_batch_size=3), [3]),
    ],
)
def test_batch_sizes_grow_further_on_a_gpu_and_a_pinned_size_is_alone(
    device: str, pins: ShapePins, expected: list[int]
) -> None:
    assert candidate_batches(device, pins) == expected


@pytest.mark.parametrize(
    ("measured", "best_smaller", "stops"),
    [
        (m(1, 30, 40), None, False),
        (m(4, 40, 480), m(2, 35, 200), True),  # 480 + 50 ms of gathering is over 500 ms
        (m(4, 30, 200), m(2, 35, 100), True),  # past the peak: 30 < 0.9 x 35
        (m(4, 33, 200), m(2, 35, 100), False),  # within noise of the peak: keep looking
        (m(4, 50, 200), m(2, 35, 100), False),
    ],
)
def test_a_batch_stops_growing_past_the_budget_or_past_the_peak(
    measured: Measurement, best_smaller: Measurement | None, stops: bool
) -> None:
    assert stop_growing(measured, best_smaller, budget_ms=500, max_wait_ms=50) is stops


def test_the_fastest_shape_within_the_budget_wins() -> None:
    shapes = [m(1, 30, 70), m(2, 40, 100), m(8, 60, 900), m(4, 45, 200, ALL_CORES)]
    assert choose(shapes, budget_ms=500, max_wait_ms=5) == m(4, 45, 200, ALL_CORES)


def test_among_equally_fast_shapes_the_most_images_in_flight_win() -> None:
    # The forward's numbers of 2026-12-07 on 2 cores: 2 x batch 4 served best (60 vs 56 req/s).
    shapes = [m(1, 104, 24), m(2, 106, 44), m(4, 97, 106), m(2, 102, 24, ALL_CORES)]
    assert choose(shapes, budget_ms=500, max_wait_ms=5) == m(4, 97, 106)


def test_among_equally_fast_shapes_of_equal_size_the_lower_latency_wins() -> None:
    shapes = [m(2, 50, 90, ALL_CORES), m(1, 49, 40)]
    assert choose(shapes, budget_ms=500, max_wait_ms=5) == m(1, 49, 40)


def test_a_shape_more_than_ten_percent_slower_does_not_win_by_its_size() -> None:
    shapes = [m(1, 100, 24), m(8, 89, 180)]
    assert choose(shapes, budget_ms=500, max_wait_ms=5) == m(1, 100, 24)


def test_when_no_shape_fits_the_budget_the_quickest_serves() -> None:
    shapes = [m(1, 10, 900), m(2, 12, 1500)]
    assert choose(shapes, budget_ms=100, max_wait_ms=5) == m(1, 10, 900)


def test_choosing_from_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no shape"):
        choose([], budget_ms=100, max_wait_ms=5)


def fake_forward(seconds_per_image: dict[int, float]) -> tuple[list[int], Callable[[int], None]]:
    """A forward that sleeps its batch's time and records the batch sizes it ran."""
    calls: list[int] = []

    def forward(batch: int) -> None:
        calls.append(batch)
        time.sleep(seconds_per_image[batch] * batch)

    return calls, forward


def test_the_sweep_stops_growing_a_batch_once_it_is_slower_per_image() -> None:
    calls, forward = fake_forward({1: 0.002, 2: 0.004, 4: 0.004, 8: 0.004})
    threads: list[int] = []
    limits = SweepLimits(budget_ms=1000, max_wait_ms=0, deadline=time.monotonic() + 60)
    measured = sweep(forward, threads.append, [Layout(1, 1)], [1, 2, 4, 8], limits)
    assert [x.batch for x in measured] == [1, 2]
    assert 4 not in calls and threads == [1]
    assert measured[0].images_per_s > measured[1].images_per_s


def test_the_sweep_measures_each_layout_with_its_thread_count() -> None:
    _, forward = fake_forward({1: 0.001, 2: 0.001})
    threads: list[int] = []
    limits = SweepLimits(budget_ms=1000, max_wait_ms=0, deadline=time.monotonic() + 60)
    measured = sweep(forward, threads.append, [Layout(2, 1), Layout(1, 2)], [1, 2], limits)
    assert threads == [1, 2]
    assert [(x.layout, x.batch) for x in measured] == [
        (Layout(2, 1), 1),
        (Layout(2, 1), 2),
        (Layout(1, 2), 1),
        (Layout(1, 2), 2),
    ]
    # Two batches in flight at once double the images per second of a sleeping forward.
    assert measured[0].images_per_s > 1.5 * measured[2].images_per_s


def test_the_sweep_past_its_deadline_still_measures_one_shape() -> None:
    _, forward = fake_forward({1: 0.001, 2: 0.001})
    limits = SweepLimits(budget_ms=1000, max_wait_ms=0, deadline=time.monotonic() - 1)
    measured = sweep(forward, lambda _: None, [Layout(2, 1), Layout(1, 2)], [1, 2], limits)
    assert [(x.layout, x.batch) for x in measured] == [(Layout(2, 1), 1)]
