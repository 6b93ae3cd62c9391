"""`helm lint` and `helm template`: what the chart renders, checked object by object."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from tryon_operator.api.vocabulary import APP_NAME, GROUP, PLURAL

from tests.integration.chart.conftest import CHART, KUBE_VERSION, Helm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SECRET_SETTINGS = {"TRYON_MLFLOW_TOKEN", "TRYON_WEBHOOK_SECRET"}
FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate", "deletecollection"}


def _kinds(objects: Iterable[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _one(objects: Iterable[dict], kind: str) -> dict:
    found = _kinds(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def _container(objects: list[dict]) -> dict:
    (container,) = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _env(objects: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in _container(objects)["env"]}


def _workload_roles(objects: list[dict], kind: str = "Role") -> list[dict]:
    """Roles (or their bindings) of the workload rules, without leader election's own."""
    return [o for o in _kinds(objects, kind)
            if not o["metadata"]["name"].endswith("-leader-election")]


def _rules(objects: list[dict]) -> list[dict]:
    return [r for o in objects if o["kind"] in ("ClusterRole", "Role") for r in o["rules"]]


def test_lint_strict_passes_with_default_and_namespaced_values(helm: Helm, tmp_path: Path) -> None:
    helm.run("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART))
    values = tmp_path / "ns.yaml"
    values.write_text("rbac: {scope: namespaced}\nwatch: {namespaces: [shop, outlet]}\n"
                      "webhook: {enabled: true, secret: {name: hooks},"
                      " tls: {secretName: hooks-tls}}\n"
                      "metrics: {serviceMonitor: {enabled: true}}\n")
    helm.run("lint", "--strict", "--kube-version", KUBE_VERSION, "-f", str(values), str(CHART))


def test_default_render_has_exactly_the_expected_objects(helm: Helm) -> None:
    objects = helm.template()
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert kinds == sorted([
        ("ServiceAccount", "rel-tryon-operator"),
        ("ClusterRole", "rel-tryon-operator"),
        ("ClusterRoleBinding", "rel-tryon-operator"),
        ("ClusterRole", "rel-tryon-operator-cluster-read"),
        ("ClusterRoleBinding", "rel-tryon-operator-cluster-read"),
        ("Service", "rel-tryon-operator"),
        ("Deployment", "rel-tryon-operator"),
        ("Role", "rel-tryon-operator-leader-election"),
        ("RoleBinding", "rel-tryon-operator-leader-election"),
        ("PodDisruptionBudget", "rel-tryon-operator"),
    ])
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "ops"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"


def test_deployment_is_two_replicas_rolling_with_probes_and_resources(helm: Helm) -> None:
    objects = helm.template()
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2  # one leader, one standby (leader election)
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    container = _container(objects)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["image"] == "ghcr.io/tryon-dev/tryon-operator:0.1.0"
    assert container["args"] == ["--liveness=http://0.0.0.0:8082/healthz", "--all-namespaces"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8082}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = _one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", 8080)]


def test_pod_runs_non_root_read_only_without_capabilities(helm: Helm) -> None:
    objects = helm.template()
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = _container(objects)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == "rel-tryon-operator"
    mounts = {m["mountPath"] for m in _container(objects)["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable place, since the root filesystem is read-only


def test_every_tryon_env_var_is_an_operator_setting(helm: Helm) -> None:
    from tryon_operator import settings

    known = {settings.ENV_PREFIX + name.upper()
             for name in settings.OperatorSettings.model_fields}
    objects = helm.template("--set", "webhook.enabled=true", "--set", "webhook.secret.name=hooks",
                            "--set", "webhook.tls.secretName=hooks-tls",
                            "--set", "mlflow.token.secretName=mlflow-token")
    rendered = {name for name in _env(objects) if name.startswith("TRYON_")}
    assert rendered <= known, f"env vars the operator does not read: {sorted(rendered - known)}"
    assert {"TRYON_MLFLOW_TRACKING_URI", "TRYON_METRICS_PORT", "TRYON_WEBHOOK_PORT",
            "TRYON_WEBHOOK_SECRET", "TRYON_MLFLOW_TOKEN", "TRYON_WEBHOOK_CERT_FILE",
            "TRYON_WEBHOOK_KEY_FILE"} <= rendered
    env = _env(objects)
    settings.OperatorSettings.from_env(
        {k: v.get("value", "secret-from-ref") for k, v in env.items() if k.startswith("TRYON_")})


def test_rendered_args_are_accepted_by_the_operator_cli(helm: Helm) -> None:
    from tryon_operator.__main__ import parse_args

    args = parse_args(_container(helm.template())["args"])
    assert args.all_namespaces and not args.namespace
    assert args.liveness == "http://0.0.0.0:8082/healthz"
    objects = helm.template("--set", "rbac.scope=namespaced", "--set", "watch.namespaces={a,b}")
    args = parse_args(_container(objects)["args"])
    assert args.namespace == ["a", "b"] and not args.all_namespaces


def test_secrets_only_come_from_secret_key_refs(helm: Helm) -> None:
    objects = helm.template("--set", "webhook.enabled=true", "--set", "webhook.secret.name=hooks",
                            "--set", "webhook.secret.key=hmac", "--set", "webhook.allowHttp=true",
                            "--set", "mlflow.token.secretName=mlflow-token")
    env = _env(objects)
    assert env["TRYON_WEBHOOK_SECRET"] == {
        "name": "TRYON_WEBHOOK_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "hooks", "key": "hmac"}}}
    assert env["TRYON_MLFLOW_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-token", "key": "token"}
    for name in SECRET_SETTINGS:
        assert "value" not in env[name]
    assert not _kinds(objects, "Secret"), "the chart must not carry secret material"
    ports = {p["name"]: p["containerPort"] for p in _container(objects)["ports"]}
    assert ports == {"metrics": 8080, "health": 8082, "webhook": 8081}
    service_ports = {p["name"]: p["port"] for p in _one(objects, "Service")["spec"]["ports"]}
    assert service_ports == {"metrics": 8080, "webhook": 8081}


def test_without_secrets_nothing_secret_is_referenced_and_webhook_is_off(helm: Helm) -> None:
    env = _env(helm.template())
    assert not SECRET_SETTINGS & set(env)
    assert env["TRYON_WEBHOOK_PORT"]["value"] == "0"
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())


def test_webhook_without_a_secret_is_refused(helm: Helm) -> None:
    result = helm.run("template", "rel", str(CHART), "--kube-version", KUBE_VERSION,
                      "--set", "webhook.enabled=true", check=False)
    assert result.returncode != 0
    assert "webhook.secret.name" in result.stderr


@pytest.mark.parametrize(("flag", "message"), [
    ("rbac.scope=everything", "rbac/scope"),
    ("metrics.port=0", "metrics/port"),
    ("image.pullPolicy=Sometimes", "image/pullPolicy"),
    ("mlflow.trackingUri=mlflow-without-scheme", "mlflow/trackingUri"),
    ("unknownKey=1", "unknownKey"),
])
def test_schema_rejects_bad_values(helm: Helm, flag: str, message: str) -> None:
    result = helm.run("template", "rel", str(CHART), "--kube-version", KUBE_VERSION,
                      "--set", flag, check=False)
    assert result.returncode != 0, f"--set {flag} was accepted"
    assert message in result.stderr


def test_rbac_has_no_wildcards_no_secrets_no_exec(helm: Helm) -> None:
    for args in ((), ("--set", "rbac.scope=namespaced")):
        rules = _rules(helm.template(*args))
        assert rules
        for rule in rules:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], rule
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), rule
            assert "secrets" not in rule["resources"], rule
            assert not any(r.startswith("pods/") for r in rule["resources"]), rule
            if "deployments/scale" in rule["resources"]:
                assert rule["verbs"] == ["patch"], rule
            assert "nonResourceURLs" not in rule
            if "pods" in rule["resources"] or "nodes" in rule["resources"] or (
                    "customresourcedefinitions" in rule["resources"]):
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_cluster_scope_grants_workload_rules_cluster_wide(helm: Helm) -> None:
    objects = helm.template()
    workload = next(o for o in _kinds(objects, "ClusterRole")
                    if o["metadata"]["name"] == "rel-tryon-operator")
    resources = {(g, r) for rule in workload["rules"]
                 for g in rule["apiGroups"] for r in rule["resources"]}
    assert resources == {
        (GROUP, PLURAL), (GROUP, f"{PLURAL}/status"),
        (GROUP, f"{PLURAL}/finalizers"), ("apps", "deployments"),
        ("apps", "deployments/scale"), ("", "services"),
        ("autoscaling", "horizontalpodautoscalers"), ("keda.sh", "scaledobjects"),
        ("", "pods"), ("", "events"), ("events.k8s.io", "events"),
    }
    for binding in _kinds(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-tryon-operator", "namespace": "ops"}]
    assert not _workload_roles(objects) and not _workload_roles(objects, "RoleBinding")


def test_namespaced_scope_renders_a_role_per_namespace(helm: Helm) -> None:
    objects = helm.template("--set", "rbac.scope=namespaced",
                            "--set", "watch.namespaces={shop,outlet}")
    assert sorted(o["metadata"]["namespace"] for o in _workload_roles(objects)) == [
        "outlet", "shop"]
    assert sorted(o["metadata"]["namespace"]
                  for o in _workload_roles(objects, "RoleBinding")) == ["outlet", "shop"]
    cluster_roles = _kinds(objects, "ClusterRole")
    assert [o["metadata"]["name"] for o in cluster_roles] == ["rel-tryon-operator-cluster-read"]
    cluster_resources = {r for rule in cluster_roles[0]["rules"] for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces", "nodes"}
    assert _container(objects)["args"] == [
        "--liveness=http://0.0.0.0:8082/healthz", "--namespace=shop", "--namespace=outlet"]
    # without a list, namespaced scope means the release namespace
    objects = helm.template("--set", "rbac.scope=namespaced", namespace="shop")
    assert [o["metadata"]["namespace"] for o in _workload_roles(objects)] == ["shop"]
    assert _container(objects)["args"] == [
        "--liveness=http://0.0.0.0:8082/healthz", "--namespace=shop"]


def test_rbac_create_false_renders_no_rbac(helm: Helm) -> None:
    objects = helm.template("--set", "rbac.create=false")
    assert not [o for o in objects if o["kind"].endswith(("Role", "RoleBinding"))]


def test_service_monitor_is_optional(helm: Helm) -> None:
    assert not _kinds(helm.template(), "ServiceMonitor")
    objects = helm.template("--set", "metrics.serviceMonitor.enabled=true",
                            "--set", "metrics.serviceMonitor.labels.release=prom")
    monitor = _one(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    service_labels = _one(objects, "Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()


def test_pod_monitor_finds_renderer_pods_everywhere_with_the_labels_the_queries_use(
    helm: Helm,
) -> None:
    assert not _kinds(helm.template(), "PodMonitor")
    monitor = _one(helm.template("--set", "metrics.podMonitor.enabled=true"), "PodMonitor")
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": APP_NAME}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    targets = {r["targetLabel"] for r in endpoint["relabelings"]}
    assert targets == {"instance_name", "color", "namespace", "pod"}
    listed = helm.template("--set", "metrics.podMonitor.enabled=true",
                           "--set", "metrics.podMonitor.namespaces={shop}")  # fmt: skip
    assert _one(listed, "PodMonitor")["spec"]["namespaceSelector"] == {"matchNames": ["shop"]}


def test_image_digest_wins_over_tag(helm: Helm) -> None:
    digest = "sha256:" + "a" * 64
    objects = helm.template("--set", "image.tag=abc123", "--set", f"image.digest={digest}")
    assert _container(objects)["image"] == f"ghcr.io/tryon-dev/tryon-operator@{digest}"
    objects = helm.template("--set", "image.tag=abc123")
    assert _container(objects)["image"] == "ghcr.io/tryon-dev/tryon-operator:abc123"


def test_schema_is_valid_json_schema_and_accepts_the_defaults() -> None:
    import jsonschema
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)
