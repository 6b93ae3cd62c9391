"""spec.renderer.podTemplate: checked against the PodSpec schema, the operator's parts kept, and
merged over the pod the operator builds (maps by key, named lists by name, the rest replaced)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from tryon_operator.api.builders import Owner, build_deployment
from tryon_operator.api.models import TryOnModelSpec
from tryon_operator.api.podtemplate import merge, operator_owned_errors, schema_errors

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="uid-1")


def spec(pod_template: dict[str, Any] | None = None, **renderer: Any) -> TryOnModelSpec:
    extra = {"podTemplate": pod_template} if pod_template is not None else {}
    return TryOnModelSpec.model_validate({
        "model": {"registeredModel": "tryon-vton"},
        "renderer": {"image": "renderer:1", **renderer, **extra},
    })  # fmt: skip


def pod(s: TryOnModelSpec) -> dict[str, Any]:
    dep = build_deployment(s, "green", "7", OWNER, tracking_uri="http://mlflow", replicas=1)
    template: dict[str, Any] = dep["spec"]["template"]
    return template


@pytest.mark.parametrize(
    ("base", "overlay", "merged"),
    [
        ({"a": 1, "b": {"c": 2}}, {"b": {"d": 3}}, {"a": 1, "b": {"c": 2, "d": 3}}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ([{"name": "x", "v": 1}], [{"name": "x", "w": 2}, {"name": "y"}],
         [{"name": "x", "v": 1, "w": 2}, {"name": "y"}]),
        ([{"key": "a"}], [{"key": "b"}], [{"key": "b"}]),  # unnamed lists replace
        ({"l": [1, 2]}, {"l": [3]}, {"l": [3]}),
    ],
)
def test_maps_merge_by_key_named_lists_by_name_and_the_rest_replaces(base, overlay, merged):
    assert merge(base, overlay) == merged


def test_a_merge_leaves_its_inputs_alone():
    base, overlay = {"a": [{"name": "x"}]}, {"a": [{"name": "y", "z": {"q": 1}}]}
    merged = merge(base, overlay)
    merged["a"][1]["z"]["q"] = 2
    assert base == {"a": [{"name": "x"}]} and overlay["a"][0]["z"]["q"] == 1


def test_a_misspelt_or_mistyped_pod_spec_field_is_named_with_its_path():
    mount = {"name": "m", "mountPath": "/m", "readOnly": "yes"}
    errors = schema_errors({
        "runtimeClassNam": "nvidia",
        "priorityClassName": 3,
        "containers": [{"name": "renderer", "volumeMounts": [mount]}],
    })  # fmt: skip
    assert errors == [
        "spec.runtimeClassNam: not a field of PodSpec",
        "spec.priorityClassName: must be str, not int",
        "spec.containers[renderer].volumeMounts[m].readOnly: must be bool, not str",
    ]


def test_resource_quantities_may_be_numbers():
    resources = {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}, "requests": {"cpu": 0.5}}
    assert schema_errors({"containers": [{"name": "renderer", "resources": resources}]}) == []


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"metadata": {"labels": {"tryon.dev/color": "blue"}}}, "metadata.labels[tryon.dev/color]"),
        ({"metadata": {"annotations": {"tryon.dev/template-hash": "x"}}},
         "metadata.annotations[tryon.dev/template-hash]"),
        ({"spec": {"containers": [{"name": "renderer", "readinessProbe": {}}]}},
         "spec.containers[renderer].readinessProbe"),
        ({"spec": {"containers": [{"name": "renderer", "ports": []}]}},
         "spec.containers[renderer].ports"),
        ({"spec": {"containers": [{"name": "renderer", "env": [{"name": "TRYON_MODEL_URI"}]}]}},
         "spec.containers[renderer].env[TRYON_MODEL_URI]"),
        ({"spec": {"containers": [{"name": "renderer", "env": [{"name": "MLFLOW_TRACKING_URI"}]}]}},
         "spec.containers[renderer].env[MLFLOW_TRACKING_URI]"),
    ],
)
def test_the_operators_own_parts_are_refused_naming_the_field(template, field):
    errors = operator_owned_errors(template)
    assert len(errors) == 1 and errors[0].startswith(f"podTemplate.{field}: "), errors


def test_a_sidecars_probes_and_env_are_its_own():
    sidecar = {"name": "proxy", "image": "envoy:1", "readinessProbe": {"tcpSocket": {"port": 9}},
               "env": [{"name": "TRYON_MODEL_URI", "value": "x"}]}  # fmt: skip
    assert operator_owned_errors({"spec": {"containers": [sidecar]}}) == []


def test_an_invalid_template_is_a_validation_error_naming_the_field():
    with pytest.raises(ValidationError, match=r"podTemplate\.spec\.runtimeClassNam: not a field"):
        spec({"spec": {"runtimeClassNam": "nvidia"}})


def test_the_template_reaches_the_pod_the_operator_builds():
    built = pod(spec({
        "metadata": {"labels": {"team": "fit"}, "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {
            "imagePullSecrets": [{"name": "registry"}],
            "runtimeClassName": "nvidia",
            "priorityClassName": "gpu-serving",
            "topologySpreadConstraints": [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "dress"}},
            }],
            "volumes": [{"name": "models", "hostPath": {"path": "/var/cache/tryon"}}],
            "containers": [{
                "name": "renderer",
                "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                "env": [{"name": "TRYON_LATENCY_BUDGET_MS", "value": "250"}],
            }],
        },
    }))  # fmt: skip
    podspec, container = built["spec"], built["spec"]["containers"][0]
    assert built["metadata"]["labels"]["team"] == "fit"
    assert built["metadata"]["labels"]["tryon.dev/color"] == "green"
    assert "tryon.dev/template-hash" in built["metadata"]["annotations"]
    assert built["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert podspec["imagePullSecrets"] == [{"name": "registry"}]
    assert (podspec["runtimeClassName"], podspec["priorityClassName"]) == ("nvidia", "gpu-serving")
    assert podspec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert [v["name"] for v in podspec["volumes"]] == ["tmp", "models"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp", "/models"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRYON_LATENCY_BUDGET_MS"] == "250"
    assert env["TRYON_MODEL_URI"] == "models:/tryon-vton/7"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert podspec["securityContext"]["runAsNonRoot"] is True


def test_existing_fields_still_apply_and_the_template_wins_where_both_set_a_scalar():
    built = pod(spec({"spec": {"serviceAccountName": "from-template"}},
                     nodeSelector={"gpu": "a100"}, serviceAccountName="from-field"))  # fmt: skip
    assert built["spec"]["nodeSelector"] == {"gpu": "a100"}
    assert built["spec"]["serviceAccountName"] == "from-template"


def test_a_pod_template_change_is_a_template_change():
    plain = spec().renderer.template_hash()
    shaped = spec({"spec": {"runtimeClassName": "nvidia"}}).renderer.template_hash()
    assert plain != shaped
