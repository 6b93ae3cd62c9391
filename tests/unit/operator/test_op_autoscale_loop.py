"""The operator's own scaling loop on a serving signal, where KEDA is not installed: the decision
(pure, table-tested against the HPA's rules) and how a reconcile turns it on the active colour."""

from __future__ import annotations

import pytest
from tryon_operator.api.errors import SignalError
from tryon_operator.decide.autoscale import Reading, decide_replicas, recommend

from tests.support.fake_world import (
    KedaKube,
    Ticks,
    body,
    fake_world,
    fast_settings,
    flip_to_v2,
    run,
    serve_v1,
)

pytestmark = pytest.mark.unit

PROM = "http://prometheus.monitoring:9090"
WINDOW = 300.0


def reading(current: int = 2, total: float | None = 4.0, **kw) -> Reading:
    facts = {"ready": current, "target": 2.0, "min_replicas": 1, "max_replicas": 8, **kw}
    return Reading(current=current, total=total, **facts)


@pytest.mark.parametrize(
    ("current", "total", "kw", "wanted"),
    [
        (2, 4.0, {}, 2),  # on target
        (2, 4.3, {}, 2),  # 2.15 per pod: within the 10 % tolerance
        (2, 5.0, {}, 3),  # 2.5 per pod: ceil(5 / 2)
        (2, 0.0, {}, 1),  # idle: down to minReplicas
        (2, 40.0, {}, 8),  # capped at maxReplicas
        (2, None, {}, 2),  # no sample: hold
        (2, 9.0, {"ready": 0}, 2),  # no Ready pod to average over: hold
        (5, 1.0, {"min_replicas": 3}, 3),
    ],
)
def test_a_reading_recommends_the_signal_over_the_per_pod_target_within_bounds(
    current, total, kw, wanted
):
    assert recommend(reading(current, total, **kw)) == wanted


def test_scale_up_is_at_once_but_at_most_doubling_or_four_pods_per_decision():
    up = decide_replicas(reading(1, 20.0), [], now=10, watched_since=0, window=WINDOW)
    assert (up.desired, up.recommendation) == (5, 8)
    assert "20.00 per pod" in up.why


def test_scale_in_waits_until_the_loop_has_watched_a_whole_window():
    early = decide_replicas(reading(3, 0.0), [], now=100, watched_since=0, window=WINDOW)
    later = decide_replicas(reading(3, 0.0), [], now=301, watched_since=0, window=WINDOW)
    assert (early.desired, later.desired) == (3, 1)


def test_scale_in_takes_the_highest_recommendation_of_the_window():
    history = [(100.0, 3), (250.0, 2), (390.0, 1)]
    decision = decide_replicas(reading(3, 0.0), history, now=450, watched_since=0, window=WINDOW)
    assert decision.desired == 2  # 3 was recommended 350 s ago, out of the window


def test_scale_in_is_held_during_a_rollout_and_scale_up_is_not():
    held = decide_replicas(
        reading(3, 0.0, hold_scale_in=True), [], now=900, watched_since=0, window=WINDOW
    )
    up = decide_replicas(
        reading(1, 6.0, hold_scale_in=True), [], now=900, watched_since=0, window=WINDOW
    )
    assert (held.desired, up.desired) == (3, 3)


class FakeSignals:
    """Prometheus as the loop sees it: a total per query, or a failure."""

    def __init__(self, total: float | None = 0.0) -> None:
        self.total_now = total
        self.failure: str | None = None
        self.queries: list[tuple[str, str]] = []

    def total(self, server: str, query: str) -> float | None:
        self.queries.append((server, query))
        if self.failure:
            raise SignalError(self.failure)
        return self.total_now


def own_loop_world(**scaling):
    kube = KedaKube(body(autoscaling={"enabled": True, "metric": "inFlight", **scaling}), False)
    signals, ticks = FakeSignals(), Ticks()
    reconciler, kube, registry, _, clock = fake_world(
        kube, settings=fast_settings(prometheus_url=PROM), signals=signals, monotonic=ticks)
    return reconciler, kube, signals, ticks, clock, registry


def test_without_keda_the_operator_scales_the_active_colour_on_requests_in_flight():
    reconciler, kube, signals, _, clock, _ = own_loop_world(target=2, maxReplicas=4)
    serve_v1(reconciler, kube, clock)
    signals.total_now = 6.0
    result = run(reconciler)
    assert "scale dress-blue 3" in kube.writes
    assert kube.events.count("Rescaled") == 1
    scaling = kube.body["status"]["autoscaling"]
    assert (scaling["scaler"], scaling["desiredReplicas"]) == ("TryOnModel", 3)
    assert signals.queries[-1] == (
        PROM,
        'sum(tryon_in_flight_requests{namespace="shop", pod=~"dress-blue-.*"})',
    )
    assert result.requeue_seconds == 5.0  # the loop's next turn


def test_the_operator_scales_in_only_after_the_stabilisation_window():
    reconciler, kube, signals, ticks, clock, _ = own_loop_world(
        target=2, scaleDownStabilizationSeconds=60
    )
    serve_v1(reconciler, kube, clock)
    signals.total_now = 6.0
    run(reconciler)
    signals.total_now = 0.0
    ticks.now += 30
    run(reconciler)
    assert kube.deployments["dress-blue"]["replicas"] == 3
    ticks.now += 61
    run(reconciler)
    assert kube.deployments["dress-blue"]["replicas"] == 1


def test_an_unreadable_prometheus_holds_the_replicas_and_is_said_once():
    reconciler, kube, signals, _, clock, _ = own_loop_world(target=2)
    serve_v1(reconciler, kube, clock)
    signals.failure = "Prometheus at http://prometheus.monitoring:9090 unreachable: refused"
    run(reconciler)
    run(reconciler)
    assert not any(w.startswith("scale dress-blue") for w in kube.writes)
    assert kube.events.count("AutoscalingUnavailable") == 1
    assert "replicas are held" in kube.body["status"]["autoscaling"]["message"]


def test_the_loop_moves_to_the_new_colour_with_the_flip_and_starts_it_at_the_active_count():
    reconciler, kube, signals, _, clock, registry = own_loop_world(target=2)
    serve_v1(reconciler, kube, clock)
    signals.total_now = 4.0
    run(reconciler)  # blue: 2 replicas
    flip_to_v2(reconciler, kube, registry, clock)
    assert kube.body["status"]["activeColor"] == "green"
    assert kube.deployments["dress-green"]["replicas"] == 2
    run(reconciler)
    assert signals.queries[-1][1].endswith('pod=~"dress-green-.*"})')
    assert kube.body["status"]["autoscaling"]["scaleTarget"] == "dress-green"


def test_a_new_colour_never_starts_above_max_replicas():
    reconciler, kube, signals, _, clock, registry = own_loop_world(target=2, maxReplicas=4)
    serve_v1(reconciler, kube, clock)
    signals.total_now = 6.0
    run(reconciler)  # blue: 3 replicas
    kube.body["spec"]["autoscaling"]["maxReplicas"] = 2
    registry.answer = type(registry.answer)("2", "run", "s3://y")
    clock.advance(1)
    run(reconciler)
    assert kube.deployments["dress-green"]["replicas"] == 2
