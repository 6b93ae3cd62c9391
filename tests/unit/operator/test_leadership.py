"""Leader election's pure parts: expiry by local observation, the records written, identity and
namespace defaults, the settings and their validation, and the fence on a fake clock."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client
from pydantic import ValidationError
from tryon_operator.api.errors import NotLeaderError
from tryon_operator.metrics import Metrics
from tryon_operator.registry.handover import ANNOTATION_LEADER_WEBHOOK
from tryon_operator.runtime.leadership.elector import LeaderElector
from tryon_operator.runtime.leadership.lease import (
    ElectionConfig,
    LeaseRecord,
    default_identity,
    default_namespace,
    free_for,
    held_spec,
    holder_annotation,
    lease_api_client,
    lease_expired,
    micro_time,
    next_attempt_in,
    released_spec,
    watched_expiry,
)
from tryon_operator.settings import OperatorSettings

from tests.support.fake_world import Ticks

pytestmark = pytest.mark.unit


def record(holder: str | None = "a", seconds: int | None = 15, transitions: int = 3) -> LeaseRecord:
    return LeaseRecord(holder, seconds, "2026-12-01T00:00:00.000000Z",
                       "2026-12-01T00:00:05.000000Z", transitions, "42")


def test_a_lease_expires_its_duration_after_this_process_saw_it_change() -> None:
    held = record(seconds=15)
    assert not lease_expired(held, observed_at=100.0, now=114.9, fallback_seconds=15)
    assert lease_expired(held, observed_at=100.0, now=115.0, fallback_seconds=15)
    # the record's own duration counts (a released Lease says 1 s) ...
    assert lease_expired(record(seconds=1), observed_at=100.0, now=101.0, fallback_seconds=15)
    # ... and without a usable one, ours does
    for seconds in (None, 0):
        assert not lease_expired(record(seconds=seconds), 100.0, 114.0, fallback_seconds=15)
        assert lease_expired(record(seconds=seconds), 100.0, 115.0, fallback_seconds=15)


def test_renew_time_is_never_compared_with_this_hosts_clock() -> None:
    """A renewTime from a host whose clock is a day behind changes nothing: only when the record
    was seen to change matters."""
    stale = LeaseRecord("a", 15, "1999-01-01T00:00:00.000000Z", "1999-01-01T00:00:00.000000Z",
                        0, "1")
    assert not lease_expired(stale, observed_at=500.0, now=501.0, fallback_seconds=15)


def test_who_may_write_itself_in() -> None:
    assert free_for(record(holder=None), "b", expired=False)
    assert free_for(record(holder="b"), "b", expired=False)
    assert not free_for(record(holder="a"), "b", expired=False)
    assert free_for(record(holder="a"), "b", expired=True)


def test_same_spec_ignores_the_resource_version() -> None:
    a = record()
    b = LeaseRecord(a.holder, a.lease_seconds, a.acquire_time, a.renew_time, a.transitions, "43")
    assert a.same_spec(b)
    assert not a.same_spec(None)
    assert not a.same_spec(record(transitions=4))


def test_lease_record_from_the_api_json() -> None:
    lease = {"metadata": {"resourceVersion": "7"},
             "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 2}}
    got = LeaseRecord.from_lease(lease)
    assert got.holder is None and got.lease_seconds == 1 and got.transitions == 2
    assert got.resource_version == "7"
    assert LeaseRecord.from_lease({}).transitions == 0


def test_takeover_counts_a_transition_and_renewal_keeps_acquire_time() -> None:
    now = micro_time()
    created = held_spec(None, "b", 15, now)
    assert created == {"holderIdentity": "b", "leaseDurationSeconds": 15, "acquireTime": now,
                       "renewTime": now, "leaseTransitions": 0}
    takeover = held_spec(record(holder="a", transitions=3), "b", 15, now)
    assert takeover["leaseTransitions"] == 4 and takeover["acquireTime"] == now
    renewal = held_spec(record(holder="b", transitions=3), "b", 15, now)
    assert renewal["leaseTransitions"] == 3
    assert renewal["acquireTime"] == "2026-12-01T00:00:00.000000Z"
    assert renewal["renewTime"] == now
    after_release = held_spec(record(holder=None, transitions=3), "b", 15, now)
    assert after_release["leaseTransitions"] == 4


def test_release_empties_the_holder_with_a_one_second_duration() -> None:
    released = released_spec(record(holder="a", transitions=3), "T")
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert released["leaseTransitions"] == 3


def test_micro_time_is_rfc3339_with_microseconds() -> None:
    assert len(micro_time()) == len("2026-12-01T00:00:00.000000Z")
    assert micro_time().endswith("Z")


def test_identity_is_the_pod_name_else_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_identity("op-7d9f-abcde") == "op-7d9f-abcde"
    monkeypatch.setattr("socket.gethostname", lambda: "laptop")
    monkeypatch.setattr("os.getpid", lambda: 4242)
    assert default_identity(None) == "laptop-4242"
    assert default_identity("") == "laptop-4242"


def test_namespace_is_the_setting_else_the_service_accounts_else_default(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    assert default_namespace("ops", sa) == "ops"
    assert default_namespace(None, sa) == "default"  # not in a pod
    sa.write_text("tryon-system\n")
    assert default_namespace(None, sa) == "tryon-system"
    assert default_namespace("", sa) == "tryon-system"


def test_settings_env_names_and_defaults() -> None:
    s = OperatorSettings.from_env({})
    assert s.leader_election is True
    assert s.leader_election_namespace is None and s.pod_name is None
    assert (s.leader_election_lease_seconds, s.leader_election_renew_deadline_seconds,
            s.leader_election_retry_period_seconds) == (15, 10.0, 2.0)
    s = OperatorSettings.from_env({
        "TRYON_LEADER_ELECTION": "false",
        "TRYON_LEADER_ELECTION_NAMESPACE": "ops",
        "TRYON_LEADER_ELECTION_LEASE_SECONDS": "30",
        "TRYON_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "20",
        "TRYON_LEADER_ELECTION_RETRY_PERIOD_SECONDS": "4",
        "TRYON_POD_NAME": "op-0",
    })
    assert s.leader_election is False and s.leader_election_namespace == "ops"
    assert s.pod_name == "op-0"
    assert (s.leader_election_lease_seconds, s.leader_election_renew_deadline_seconds,
            s.leader_election_retry_period_seconds) == (30, 20.0, 4.0)


@pytest.mark.parametrize(("lease", "renew", "retry"), [
    ("15", "15", "2"), ("10", "12", "2"), ("15", "2", "2"), ("15", "10", "11"), ("0", "0", "0"),
])
def test_settings_need_lease_above_renew_deadline_above_retry(
    lease: str, renew: str, retry: str,
) -> None:
    with pytest.raises(ValidationError):
        OperatorSettings.from_env({
            "TRYON_LEADER_ELECTION_LEASE_SECONDS": lease,
            "TRYON_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": renew,
            "TRYON_LEADER_ELECTION_RETRY_PERIOD_SECONDS": retry,
        })


def test_elector_from_settings(tmp_path: Path) -> None:
    settings = OperatorSettings.from_env({"TRYON_POD_NAME": "op-0",
                                          "TRYON_LEADER_ELECTION_NAMESPACE": "ops"})
    elector = LeaderElector.from_settings(settings, client.ApiClient())
    assert (elector.identity, elector.namespace, elector.name) == ("op-0", "ops", "tryon-operator")
    assert (elector.lease_seconds, elector.renew_deadline, elector.retry_period) == (15, 10, 2)
    assert elector._client._coordination.api_client.configuration.retries is False
    for lease, renew, retry in ((5, 5, 1), (5, 4, 4), (5, 4, 0)):
        with pytest.raises(ValueError):
            ElectionConfig("x", "n", lease_seconds=lease, renew_deadline_seconds=renew,
                           retry_period_seconds=retry)


def test_the_fence_closes_at_the_renew_deadline_whatever_the_loop_does() -> None:
    clock = Ticks()
    metrics = Metrics()
    elector = LeaderElector(client.ApiClient(), ElectionConfig("a", "n", record_events=False),
                            metrics=metrics, clock=clock)
    assert not elector.is_leader and not elector.still_leader()
    with pytest.raises(NotLeaderError), elector.write_batch():
        pass
    elector._become_leader(clock.now)  # what a successful acquire does
    assert elector.is_leader and elector.still_leader()
    assert elector.wait_for_leadership(0)
    with elector.write_batch():
        pass
    assert metrics.registry.get_sample_value("tryon_leader") == 1
    assert metrics.registry.get_sample_value(
        "tryon_leader_transitions_total", {"transition": "started"}) == 1
    clock.now += 9.9
    assert elector.still_leader()
    clock.now += 0.1  # 10 s since the last renewal began, no renewal since
    assert elector.is_leader and not elector.still_leader()
    with pytest.raises(NotLeaderError), elector.write_batch():
        pass
    elector._step_down("test")
    assert not elector.is_leader and not elector.wait_for_leadership(0)
    assert metrics.registry.get_sample_value("tryon_leader") == 0
    assert metrics.registry.get_sample_value(
        "tryon_leader_transitions_total", {"transition": "stopped"}) == 1


def test_the_lease_client_has_no_hidden_retries_and_a_pool_of_its_own() -> None:
    shared = client.Configuration()
    shared.host = "https://10.0.0.1:6443"
    shared.connection_pool_maxsize = 32
    base = client.ApiClient(shared)
    own = lease_api_client(base)
    assert own is not base and own.configuration is not shared
    assert own.configuration.host == shared.host
    assert own.configuration.retries is False and own.configuration.connection_pool_maxsize == 2
    assert shared.retries is None and shared.connection_pool_maxsize == 32


@pytest.mark.parametrize(("what", "holder", "seconds", "expires_at"), [
    ("another holder: its own duration", "a", 15, 1015.01),
    ("another holder without a duration: ours", "a", None, 1020.01),
    ("nobody holds it", None, 15, None),
    ("we hold it", "b", 15, None),
])
def test_when_a_watched_lease_expires(what, holder, seconds, expires_at) -> None:
    watched = record(holder=holder, seconds=seconds)
    assert watched_expiry(watched, "b", observed_at=1000.0, fallback_seconds=20) == (
        pytest.approx(expires_at) if expires_at is not None else None), what
    assert watched_expiry(None, "b", observed_at=1000.0, fallback_seconds=20) is None


@pytest.mark.parametrize(("what", "began", "now", "kwargs", "pause"), [
    # a standby: a retry period plus jitter while the watched Lease is valid ...
    ("standby, Lease valid", 1000.0, 1000.0, {"expires_at": 1015.01}, 2.0),
    ("standby, Lease valid, jitter", 1000.0, 1000.0, {"expires_at": 1015.01, "jitter": 0.2}, 2.2),
    # ... not 2 s when the Lease expires first
    ("standby, Lease expires first", 1014.5, 1014.5, {"expires_at": 1015.01, "jitter": 0.1}, 0.51),
    # nobody holds it: the next look takes it anyway
    ("standby, nobody holds it", 1014.5, 1014.5, {"jitter": 0.1}, 2.1),
    # a leader: a retry period, or sooner its fence, to step down on time; no jitter
    ("leader, fence later", 1000.0, 1000.0, {"fence": 1010.0}, 2.0),
    ("leader, fence first", 1000.0, 1000.0, {"fence": 1001.0}, 1.0),
    ("leader, fence passed", 1000.0, 1000.0, {"fence": 999.0}, 0.0),
    ("the attempt took a retry period", 1000.0, 1003.0, {}, 0.0),
    ("the attempt took a while", 1000.0, 1000.5, {}, 1.5),
])
def test_when_the_next_attempt_comes(what, began, now, kwargs, pause) -> None:
    assert next_attempt_in(now, began, 2.0, **kwargs) == pytest.approx(pause), what


def test_an_unexpected_error_is_a_failed_attempt_not_the_end_of_the_campaign() -> None:
    elector = LeaderElector(
        client.ApiClient(),
        ElectionConfig("a", "n", record_events=False, retry_period_seconds=0.01),
    )
    calls: list[float] = []

    def broken(timeout: float) -> None:
        calls.append(timeout)
        raise RuntimeError("a body nobody expected")

    elector._client.get = broken  # type: ignore[method-assign, assignment]
    elector.start()
    try:
        give_up = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < give_up:
            time.sleep(0.01)
    finally:
        elector.stop()
    assert len(calls) >= 2, "the campaign goes on"
    assert 9 < calls[0] <= 10  # each attempt bounded by the renew deadline
    assert not elector.is_leader


def lease_held_by(holder: str | None, url: str | None) -> dict[str, object]:
    annotations = {ANNOTATION_LEADER_WEBHOOK: url} if url else {}
    return {"metadata": {"annotations": annotations}, "spec": {"holderIdentity": holder}}


def holders_webhook_url(lease: dict[str, object], identity: str) -> str | None:
    return holder_annotation(lease, identity, ANNOTATION_LEADER_WEBHOOK)


def test_the_holders_webhook_address_comes_from_the_lease_annotation() -> None:
    assert holders_webhook_url(lease_held_by("a", "https://10.0.0.7:8443"), "b") == (
        "https://10.0.0.7:8443")
    assert holders_webhook_url(lease_held_by("a", None), "b") is None
    assert holders_webhook_url(lease_held_by(None, "https://10.0.0.7:8443"), "b") is None
    assert holders_webhook_url(lease_held_by("b", "https://10.0.0.7:8443"), "b") is None


def test_the_holder_writes_its_webhook_address_only_when_it_has_one() -> None:
    config = ElectionConfig(identity="a", namespace="ns",
                            holder_annotations={ANNOTATION_LEADER_WEBHOOK: "https://10.0.0.7:8443"})
    assert config.lease_annotations == {ANNOTATION_LEADER_WEBHOOK: "https://10.0.0.7:8443"}
    no_address = ElectionConfig(identity="a", namespace="ns",
                                holder_annotations={ANNOTATION_LEADER_WEBHOOK: None})
    assert no_address.lease_annotations == {}
