"""The chaos invariants themselves: each passes on a healthy snapshot and fails on the broken one
it exists to catch (so the chaos test's "0 violations" means something)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.integration.chaos import invariants as inv
from tests.integration.chaos.engine import Stats, percentile

pytestmark = pytest.mark.unit

UID = "uid-1"
LABELS = {"app.kubernetes.io/name": "tryon-renderer", "app.kubernetes.io/instance": "dress"}


def _owned(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "uid": f"uid-{name}",
            "ownerReferences": [{"uid": UID, "controller": True}], **extra}


def _deployment(color: str, version: str, replicas: int) -> dict[str, Any]:
    labels = {**LABELS, inv.COLOR: color, inv.VERSION: version}
    return {"metadata": _owned(f"dress-{color}", labels=labels,
                               annotations={inv.TEMPLATE_HASH: "h1"}),
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}}}}


def _pod(color: str, version: str, n: int, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": f"dress-{color}-{n}", "uid": f"p{color}{n}",
                         "labels": {**LABELS, inv.COLOR: color, inv.VERSION: version},
                         "ownerReferences": [{"uid": f"rs-{color}"}]},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}]}}


def _service(name: str, color: str) -> dict[str, Any]:
    return {"metadata": _owned(name), "spec": {"selector": {**LABELS, inv.COLOR: color}}}


def rejected_tag(version: str) -> dict[str, str]:
    """Version 3 is the healthy snapshot's rejected version; the operator tagged it."""
    return {"tryon.dev/rejected": "ns/dress: SmokeTestFailed"} if version == "3" else {}


def healthy() -> inv.Snapshot:
    """dress serves version 2 on green with 2 Ready pods; blue (version 1) is at 0."""
    status = {
        "observedGeneration": 3, "phase": "Healthy", "activeColor": "green",
        "activeVersion": "2", "activeTemplateHash": "h1", "rejectedVersions": ["3"],
        "model": {"version": "2"}, "rollout": None,
        "conditions": [{"type": "Ready", "status": "True"},
                       {"type": "Degraded", "status": "False"}],
    }
    return inv.Snapshot(
        tom={"metadata": {"name": "dress", "uid": UID, "generation": 3},
             "spec": {"model": {"registeredModel": "m"}}, "status": status},
        deployments=[_deployment("blue", "1", 0), _deployment("green", "2", 2)],
        replicasets=[{"metadata": {"name": f"rs-{c}", "uid": f"rs-{c}",
                                   "ownerReferences": [{"uid": f"uid-dress-{c}"}]}}
                     for c in inv.COLORS],
        pods=[_pod("green", "2", 1), _pod("green", "2", 2)],
        services=[_service("dress", "green"), _service("dress-preview", "blue")],
        hpas=[],
        spec_template_hash="h1",
        registry=inv.RegistrySnapshot(
            aliases={"production": "2"}, description="", model_tags={},
            versions={v: {"source": f"s3://{v}", "tags": {"owner": "t", **rejected_tag(v)}}
                      for v in "123"}),
        expect=inv.Expectations(
            aliases={"production": "2"}, versions=frozenset("123"),
            version_fields={v: {"source": f"s3://{v}", "tags": {"owner": "t"}} for v in "123"},
            target_version="2", expect_serving=True),
    )


def test_a_healthy_snapshot_has_no_violations():
    assert inv.check_all(healthy()) == []


def broken(mutate) -> list[str]:
    snap = copy.deepcopy(healthy())
    mutate(snap)
    return sorted({v.invariant for v in inv.check_all(snap)})


def _status(snap: inv.Snapshot) -> dict[str, Any]:
    return snap.tom["status"]


@pytest.mark.parametrize(("what", "mutate", "expected"), [
    ("selector names no colour",
     lambda s: s.services[0]["spec"]["selector"].update({inv.COLOR: "none"}),
     "service-selects-one-ready-colour"),
    ("active pod not Ready while another is",
     lambda s: s.pods[0]["status"]["conditions"][0].update(status="False"),
     "service-selects-one-ready-colour"),
    ("status names the other colour",
     lambda s: s.services[0]["spec"]["selector"].update({inv.COLOR: "blue"}),
     "status-matches-service"),
    ("active Deployment runs another version",
     lambda s: s.deployments[1]["metadata"]["labels"].update({inv.VERSION: "1"}),
     "active-version-labels"),
    ("rejected version serves",
     lambda s: _status(s)["rejectedVersions"].append("2"), "no-rejected-version-serves"),
    ("rejected template serves",
     lambda s: _status(s).update(rejectedTemplateHash="h1"), "no-rejected-version-serves"),
    ("smoke-failing version serves",
     lambda s: object.__setattr__(s, "expect", inv.Expectations(
         **{**s.expect.__dict__, "bad_versions": frozenset({"2"})})),
     "no-rejected-version-serves"),
    ("idle colour left scaled up",
     lambda s: s.deployments[0]["spec"].update(replicas=1), "idle-colour-scaled-to-0"),
    ("child without owner reference",
     lambda s: s.services[1]["metadata"].update(ownerReferences=[]), "no-orphans"),
    ("orphaned pod",
     lambda s: s.pods[0]["metadata"].update(ownerReferences=[{"uid": "gone"}]), "no-orphans"),
    ("stale observedGeneration",
     lambda s: _status(s).update(observedGeneration=2), "status-matches-cluster"),
    ("status.model behind the alias",
     lambda s: s.registry.aliases.update(production="3"), "registry-unchanged"),
    ("good version not serving",
     lambda s: _status(s).update(activeVersion="1", activeColor="green"), "outcome"),
    ("foreign tag written",
     lambda s: s.registry.versions["1"]["tags"].update(stage="prod"), "registry-unchanged"),
    ("test's tag removed",
     lambda s: s.registry.versions["1"]["tags"].pop("owner"), "registry-unchanged"),
    ("version deleted",
     lambda s: s.registry.versions.pop("1"), "registry-unchanged"),
    ("rejected version without its MLflow tag",
     lambda s: s.registry.versions["3"]["tags"].pop("tryon.dev/rejected"),
     "registry-unchanged"),
])
def test_each_invariant_catches_what_it_is_for(what, mutate, expected):
    assert expected in broken(mutate), what


def test_operator_tags_are_allowed():
    def tag(s: inv.Snapshot) -> None:
        s.registry.versions["2"]["tags"]["tryon.dev/promoted"] = "dress at t"
        s.registry.versions["3"]["tags"]["tryon.dev/rejected"] = "dress: CrashLoop"
    assert broken(tag) == []


def test_an_active_colour_with_pods_none_ready_is_a_violation():
    def all_down(s: inv.Snapshot) -> None:
        for pod in s.pods:
            pod["status"]["conditions"][0]["status"] = "False"
    assert "service-selects-one-ready-colour" in broken(all_down)


def test_no_pods_anywhere_is_exempt_from_the_ready_rule():
    def no_pods(s: inv.Snapshot) -> None:
        s.pods.clear()
    assert "service-selects-one-ready-colour" not in broken(no_pods)


def test_no_active_pods_while_the_other_colour_has_ready_ones_is_a_violation():
    def wrong_side(s: inv.Snapshot) -> None:
        s.pods[:] = [_pod("blue", "1", 1)]
    assert "service-selects-one-ready-colour" in broken(wrong_side)


def test_summary_table_shows_violations_and_recovery_percentiles():
    stats = Stats(seed=7, iterations=2, seconds=[10.0, 12.0])
    stats.faults["operator-sigkill+restart"] = 3
    stats.violations.append((2, inv.Violation("outcome", "x")))
    from tests.integration.chaos.engine import Recovery
    stats.recoveries += [Recovery(1, 1.0, ()), Recovery(2, 3.0, ())]
    table = stats.table()
    assert "invariant violations: 1" in table
    assert "iteration 2: outcome: x" in table
    assert "p50=1.00s max=3.00s" in table
    assert "operator-sigkill+restart          3" in table


def test_percentile_is_nearest_rank():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([1.0, 2.0], 50) == 1.0
    assert percentile([1.0], 99) == 1.0
