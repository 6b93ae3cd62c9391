"""`helm install` into the local control plane, then `kubectl auth can-i` as the operator's
ServiceAccount: it can do exactly what the operator needs and nothing more, in both RBAC scopes.

The apiserver is real (RBAC authorizer, impersonation), so every answer here is the cluster's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from tryon_operator.api.vocabulary import GROUP, PLURAL

from tests.integration.chart.conftest import CHART, Helm
from tests.support.cluster import KubeCluster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CRD = f"{PLURAL}.{GROUP}"
FULL = {"get", "list", "watch", "create", "update", "patch", "delete"}
READ = {"get", "list", "watch"}
CLUSTER_READS = {
    "namespaces": READ,
    "nodes": READ,
    "customresourcedefinitions.apiextensions.k8s.io": READ,
}
WORKLOAD = {
    CRD: {"get", "list", "watch", "patch"},
    f"{CRD}/status": {"get", "patch"},
    f"{CRD}/finalizers": {"update"},
    "deployments.apps": FULL,
    "deployments.apps/scale": {"patch"},
    "services": FULL,
    "horizontalpodautoscalers.autoscaling": FULL,
    "scaledobjects.keda.sh": {"get", "create", "patch", "delete"},
    "pods": READ,
    "events": {"get", "create", "patch"},
    "events.events.k8s.io": {"create", "patch"},
}
# Leader election, in the release namespace only: get/update on the Lease tryon-operator, and
# create (which RBAC cannot narrow to a name).
LEASES = {"leases.coordination.k8s.io": {"get", "update", "create"}}
# Granted to every authenticated user by the cluster's own bootstrap roles, not by the chart.
EVERYONE = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}

# (verb, resource, extra kubectl args): never allowed, in any namespace or cluster-wide.
NEVER = [
    ("list", "secrets", ["--all-namespaces"]),
    ("get", "secrets", []),
    ("watch", "secrets", []),
    ("create", "pods", ["--subresource=exec"]),
    ("get", "pods", ["--subresource=log"]),
    ("create", "pods", []),
    ("delete", "pods", []),
    ("create", "pods", ["--subresource=eviction"]),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", []),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", []),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", []),
    ("create", CRD, []),
    ("delete", CRD, []),
    ("update", CRD, []),
    ("patch", "nodes", []),
    ("delete", "namespaces", []),
    ("list", "configmaps", ["--all-namespaces"]),
    ("create", "serviceaccounts", ["--subresource=token"]),
    ("create", "clusterroles.rbac.authorization.k8s.io", []),
    ("create", "rolebindings.rbac.authorization.k8s.io", []),
    ("escalate", "roles.rbac.authorization.k8s.io", []),
    ("bind", "clusterroles.rbac.authorization.k8s.io", []),
    ("impersonate", "users", []),
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io", []),
    ("*", "*", ["--all-namespaces"]),
]


class Operator:
    """The operator's ServiceAccount as the apiserver sees it."""

    def __init__(self, cluster: KubeCluster, namespace: str, name: str) -> None:
        self.cluster = cluster
        self.user = f"system:serviceaccount:{namespace}:{name}"

    def can(self, verb: str, resource: str, *args: str, namespace: str | None = None) -> bool:
        scope = ["--namespace", namespace] if namespace else []
        out = self.cluster.kubectl("auth", "can-i", verb, resource, f"--as={self.user}",
                                   *scope, *args, check=False)
        answer = out.splitlines()[0].strip() if out else ""
        assert answer in ("yes", "no"), f"unexpected can-i answer: {out!r}"
        return answer == "yes"

    def granted(self, namespace: str) -> dict[str, set[str]]:
        """Every resource rule that applies in ``namespace`` (kubectl auth can-i --list)."""
        out = self.cluster.kubectl("auth", "can-i", "--list", f"--as={self.user}",
                                   "--namespace", namespace)
        rules: dict[str, set[str]] = {}
        for line in out.splitlines()[1:]:
            if not line.strip() or line.startswith(" "):  # non-resource URLs have no resource
                continue
            resource = line.split()[0]
            verbs = line[line.rindex("[") + 1: line.rindex("]")].split()
            rules.setdefault(resource, set()).update(verbs)
        return {r: v for r, v in rules.items() if r not in EVERYONE}


def assert_lease_rights(op: Operator, release_ns: str, elsewhere: str) -> None:
    """get/update on the one Lease, create in the release namespace; nothing else on Leases."""
    lease = "leases.coordination.k8s.io"
    for verb in ("get", "update"):
        assert op.can(verb, f"{lease}/tryon-operator", namespace=release_ns), verb
        assert not op.can(verb, f"{lease}/kube-controller-manager", namespace=release_ns), verb
        assert not op.can(verb, f"{lease}/tryon-operator", namespace=elsewhere), verb
    assert op.can("create", lease, namespace=release_ns)
    assert not op.can("create", lease, namespace=elsewhere)
    assert not op.can("create", lease, namespace="kube-system")
    for verb in ("list", "watch", "patch", "delete", "deletecollection"):
        assert not op.can(verb, lease, namespace=release_ns), verb
        assert not op.can(verb, f"{lease}/tryon-operator", namespace=release_ns), verb
    assert not op.can("get", lease, "--all-namespaces")


def _crd_established(cluster: KubeCluster) -> bool:
    crd = cluster.get_json("customresourcedefinition", CRD)
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in crd.get("status", {}).get("conditions", []))


@contextmanager
def installed(helm: Helm, cluster: KubeCluster, namespace: str, *values: str) -> Iterator[str]:
    """Installs the chart as a release named after the namespace; uninstalls it afterwards.

    The CRD comes from the chart's crds/ on the first install; when an earlier test (or another
    suite) has already created it, Helm leaves it alone, so installs never fight over it.
    """
    release = f"op-{uuid.uuid4().hex[:6]}"
    out = helm.run("install", release, str(CHART), "--kubeconfig", cluster.kubeconfig,
                   "--namespace", namespace, "--timeout", "60s", *values).stdout
    try:
        wait_for(lambda: _crd_established(cluster), 60, f"CRD {CRD} established")
        yield out
    finally:
        helm.run("uninstall", release, "--kubeconfig", cluster.kubeconfig,
                 "--namespace", namespace, "--wait", "--timeout", "60s")
        leftovers = [
            name for name in cluster.kubectl(
                "get", "clusterroles,clusterrolebindings", "-o", "name",
                "-l", f"app.kubernetes.io/instance={release}").split() if name]
        assert not leftovers, f"uninstall left {leftovers}"


@pytest.fixture
def other_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def _release_name(helm_out: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in helm_out.splitlines()
                if line.startswith("NAME:"))


def test_cluster_scope_grants_exactly_what_the_operator_needs(
    helm: Helm, kube_cluster: KubeCluster, namespace: str, other_namespace: str,
) -> None:
    with installed(helm, kube_cluster, namespace) as out:
        release = _release_name(out)
        sa = f"{release}-tryon-operator"
        assert "It manages TryOnModels in: all namespaces" in out
        assert "RBAC: cluster scope" in out
        deployment = kube_cluster.get_json("deployment", sa, "-n", namespace)
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa
        kube_cluster.get_json("serviceaccount", sa, "-n", namespace)

        op = Operator(kube_cluster, namespace, sa)
        # exactly the workload rules plus the cluster reads, in any namespace, plus the Lease
        # in the release namespace
        assert op.granted(namespace) == WORKLOAD | CLUSTER_READS | LEASES
        assert op.granted(other_namespace) == WORKLOAD | CLUSTER_READS
        assert_lease_rights(op, namespace, elsewhere=other_namespace)
        # and the cluster-wide verbs kopf's watches use
        for verb in ("list", "watch"):
            assert op.can(verb, CRD, "--all-namespaces")
            assert op.can(verb, "pods", "--all-namespaces")
            assert op.can(verb, "deployments.apps", "--all-namespaces")
        assert op.can("patch", CRD, "--subresource=status", namespace=other_namespace)
        assert op.can("patch", "deployments.apps", "--subresource=scale",
                      namespace=other_namespace)
        assert op.can("delete", "horizontalpodautoscalers.autoscaling", namespace=other_namespace)
        assert op.can("create", "events", namespace=other_namespace)
        assert op.can("create", "events.events.k8s.io", namespace=other_namespace)
        for verb, resource, args in NEVER:
            assert not op.can(verb, resource, *args, namespace=other_namespace), (
                f"operator may {verb} {resource} {' '.join(args)}")


def test_namespaced_scope_confines_workload_rights_to_the_watched_namespaces(
    helm: Helm, kube_cluster: KubeCluster, namespace: str, other_namespace: str,
) -> None:
    unwatched = "default"
    with installed(helm, kube_cluster, namespace, "--set", "rbac.scope=namespaced",
                   "--set", f"watch.namespaces={{{namespace},{other_namespace}}}") as out:
        release = _release_name(out)
        sa = f"{release}-tryon-operator"
        assert f"It manages TryOnModels in: {namespace}, {other_namespace}" in out
        for ns in (namespace, other_namespace):
            kube_cluster.get_json("role", sa, "-n", ns)
            kube_cluster.get_json("rolebinding", sa, "-n", ns)
        args = kube_cluster.get_json("deployment", sa, "-n", namespace)[
            "spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--namespace={namespace}" in args and f"--namespace={other_namespace}" in args

        op = Operator(kube_cluster, namespace, sa)
        assert op.granted(namespace) == WORKLOAD | CLUSTER_READS | LEASES
        assert op.granted(other_namespace) == WORKLOAD | CLUSTER_READS
        assert_lease_rights(op, namespace, elsewhere=unwatched)
        for ns in (namespace, other_namespace):
            assert op.can("patch", CRD, "--subresource=status", namespace=ns)
            assert op.can("create", "deployments.apps", namespace=ns)
        # elsewhere: only the read-only cluster-scoped rules
        assert op.granted(unwatched) == CLUSTER_READS
        assert not op.can("get", CRD, namespace=unwatched)
        assert not op.can("create", "deployments.apps", namespace=unwatched)
        assert not op.can("list", "pods", "--all-namespaces")
        assert not op.can("list", CRD, "--all-namespaces")
        assert op.can("list", "nodes")
        assert op.can("watch", "customresourcedefinitions.apiextensions.k8s.io")
        for verb, resource, args in NEVER:
            for ns in (namespace, unwatched):
                assert not op.can(verb, resource, *args, namespace=ns), (
                    f"operator may {verb} {resource} {' '.join(args)} in {ns}")


def test_upgrade_from_cluster_to_namespaced_scope_drops_the_cluster_wide_grant(
    helm: Helm, kube_cluster: KubeCluster, namespace: str, other_namespace: str,
) -> None:
    with installed(helm, kube_cluster, namespace) as out:
        release = _release_name(out)
        sa = f"{release}-tryon-operator"
        op = Operator(kube_cluster, namespace, sa)
        assert op.can("create", "services", namespace=other_namespace)
        helm.run("upgrade", release, str(CHART), "--kubeconfig", kube_cluster.kubeconfig,
                 "--namespace", namespace, "--reuse-values", "--set", "rbac.scope=namespaced")
        roles = json.loads(kube_cluster.kubectl(
            "get", "clusterroles", "-o", "json", "-l", f"app.kubernetes.io/instance={release}"))
        assert [r["metadata"]["name"] for r in roles["items"]] == [f"{sa}-cluster-read"]
        assert not op.can("create", "services", namespace=other_namespace)
        assert op.can("create", "services", namespace=namespace)
