"""`helm template`: the chart's high-availability parts — replicas, leader election settings,
the Lease RBAC, the PodDisruptionBudget and the anti-affinity — and the combinations it refuses."""

from __future__ import annotations

import pytest

from tests.integration.chart.conftest import CHART, KUBE_VERSION, Helm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _kinds(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _pod(objects: list[dict]) -> dict:
    (deployment,) = _kinds(objects, "Deployment")
    spec: dict = deployment["spec"]["template"]["spec"]
    return spec


def _env(objects: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in _pod(objects)["containers"][0]["env"]}


def test_leader_election_settings_reach_the_operator(helm: Helm) -> None:
    from tryon_operator.settings import OperatorSettings

    env = _env(helm.template(namespace="ops"))
    assert env["TRYON_LEADER_ELECTION"]["value"] == "true"
    assert env["TRYON_LEADER_ELECTION_NAMESPACE"]["value"] == "ops"  # where the Role is
    assert env["TRYON_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    settings = OperatorSettings.from_env(
        {k: v["value"] for k, v in env.items() if k.startswith("TRYON_") and "value" in v})
    assert settings.leader_election and settings.leader_election_namespace == "ops"
    assert (settings.leader_election_lease_seconds,
            settings.leader_election_renew_deadline_seconds,
            settings.leader_election_retry_period_seconds) == (15, 10, 2)
    env = _env(helm.template("--set", "leaderElection.leaseSeconds=30",
                             "--set", "leaderElection.renewDeadlineSeconds=20",
                             "--set", "leaderElection.retryPeriodSeconds=4"))
    assert [env[f"TRYON_LEADER_ELECTION_{k}_SECONDS"]["value"]
            for k in ("LEASE", "RENEW_DEADLINE", "RETRY_PERIOD")] == ["30", "20", "4"]


def test_lease_rbac_is_one_role_in_the_release_namespace(helm: Helm) -> None:
    for args in ((), ("--set", "rbac.scope=namespaced", "--set", "watch.namespaces={shop}")):
        objects = helm.template(*args, namespace="ops")
        roles = [o for o in _kinds(objects, "Role")
                 if o["metadata"]["name"] == "rel-tryon-operator-leader-election"]
        assert len(roles) == 1 and roles[0]["metadata"]["namespace"] == "ops"
        assert roles[0]["rules"] == [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "resourceNames": ["tryon-operator"], "verbs": ["get", "update"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["create"]},
        ]
        (binding,) = [o for o in _kinds(objects, "RoleBinding")
                      if o["metadata"]["name"] == "rel-tryon-operator-leader-election"]
        assert binding["metadata"]["namespace"] == "ops"
        assert binding["roleRef"]["name"] == "rel-tryon-operator-leader-election"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-tryon-operator", "namespace": "ops"}]
        # no other rule anywhere mentions leases
        for role in _kinds(objects, "Role") + _kinds(objects, "ClusterRole"):
            if role is not roles[0]:
                assert not any("leases" in r["resources"] for r in role["rules"]), role


def test_two_replicas_get_a_disruption_budget_and_spread_over_nodes(helm: Helm) -> None:
    objects = helm.template()
    (pdb,) = _kinds(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    (deployment,) = _kinds(objects, "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (term,) = _pod(objects)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == (
        deployment["spec"]["selector"]["matchLabels"])
    # an affinity of the user's own replaces the default one
    mine = helm.template("--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuring"
                         "Execution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
                         "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuring"
                         "Execution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists")
    assert set(_pod(mine)["affinity"]) == {"nodeAffinity"}
    # one replica: no budget (it would block every drain) and nothing to spread
    single = helm.template("--set", "replicas=1")
    assert not _kinds(single, "PodDisruptionBudget") and "affinity" not in _pod(single)
    assert not _kinds(helm.template("--set", "podDisruptionBudget.enabled=false"),
                      "PodDisruptionBudget")


def test_without_leader_election_one_replica_recreate_and_no_lease_rights(helm: Helm) -> None:
    objects = helm.template("--set", "leaderElection.enabled=false", "--set", "replicas=1")
    (deployment,) = _kinds(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = _env(objects)
    assert env["TRYON_LEADER_ELECTION"]["value"] == "false"
    assert "TRYON_POD_NAME" not in env and "TRYON_LEADER_ELECTION_NAMESPACE" not in env
    assert not _kinds(objects, "Role") and not _kinds(objects, "PodDisruptionBudget")


@pytest.mark.parametrize(("flags", "message"), [
    (["leaderElection.enabled=false"], "replicas > 1 needs leaderElection.enabled"),
    (["leaderElection.renewDeadlineSeconds=15"], "leaseSeconds > renewDeadlineSeconds"),
    (["leaderElection.retryPeriodSeconds=10"], "renewDeadlineSeconds > retryPeriodSeconds"),
    (["replicas=0"], "replicas"),
    (["leaderElection.leaseSeconds=1.5"], "leaseSeconds"),
])
def test_refused_combinations(helm: Helm, flags: list[str], message: str) -> None:
    args = [a for flag in flags for a in ("--set", flag)]
    result = helm.run("template", "rel", str(CHART), "--kube-version", KUBE_VERSION, *args,
                      check=False)
    assert result.returncode != 0, f"{flags} accepted"
    assert message in result.stderr
