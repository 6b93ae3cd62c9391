"""Child objects come from pure builders; these pin down the contract labels and shapes."""

from __future__ import annotations

import pytest
from tryon_operator.api.builders import Owner, build_deployment, build_hpa, build_service
from tryon_operator.api.models import TryOnModelSpec

pytestmark = pytest.mark.unit

OWNER = Owner(name="dress", namespace="shop", uid="uid-1")


def spec(**renderer) -> TryOnModelSpec:
    return TryOnModelSpec.model_validate({
        "model": {"registeredModel": "tryon-vton"},
        "renderer": {"image": "renderer:1", **renderer},
    })


def deployment(s: TryOnModelSpec | None = None, color="green", version="7", replicas=2):
    return build_deployment(s or spec(), color, version, OWNER, tracking_uri="http://mlflow",
                            replicas=replicas)


def test_deployment_is_named_after_owner_and_colour_and_owned_by_it():
    dep = deployment()
    assert dep["metadata"]["name"] == "dress-green"
    ref = dep["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "TryOnModel", "dress", "uid-1", True)


def test_pods_carry_the_contract_labels():
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "tryon-renderer",
        "app.kubernetes.io/instance": "dress",
        "tryon.dev/color": "green",
        "tryon.dev/model-version": "7",
    }


def test_selector_does_not_include_the_version_so_a_colour_can_change_versions():
    selector = deployment()["spec"]["selector"]["matchLabels"]
    assert "tryon.dev/model-version" not in selector
    assert selector["tryon.dev/color"] == "green"


def test_container_is_pinned_to_the_model_version():
    env = {e["name"]: e["value"] for e in
           deployment()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TRYON_MODEL_URI"] == "models:/tryon-vton/7"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow"


def test_gpu_by_default_and_probes_on_healthz_and_readyz():
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_readiness_is_seen_within_a_second_of_the_renderer_turning_ready():
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["startupProbe"]["periodSeconds"] == 1
    assert container["readinessProbe"]["periodSeconds"] == 1


def test_a_stopping_pod_keeps_serving_until_its_endpoint_is_gone_then_drains():
    pod = deployment()["spec"]["template"]["spec"]
    sleep = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep >= 3
    # the grace period covers the sleep plus the renderer's 30 s drain
    assert pod["terminationGracePeriodSeconds"] >= sleep + 30


def test_user_pod_labels_and_annotations_reach_the_pods():
    dep = deployment(spec(podLabels={"team": "vton"}, podAnnotations={"a": "b"}))
    meta = dep["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "vton"
    assert meta["annotations"]["a"] == "b"


def test_renderer_pods_invite_prometheus_to_scrape_their_port_unless_told_otherwise():
    meta = deployment(spec())["spec"]["template"]["metadata"]
    port = str(spec().renderer.port)
    assert meta["annotations"]["prometheus.io/scrape"] == "true"
    assert meta["annotations"]["prometheus.io/port"] == port
    assert meta["annotations"]["prometheus.io/path"] == "/metrics"
    off = deployment(spec(podAnnotations={"prometheus.io/scrape": "false"}))
    assert off["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "false"


def test_template_hash_ignores_replicas_but_not_the_image():
    base = spec().renderer.template_hash()
    assert spec(replicas=5).renderer.template_hash() == base
    assert spec(image="renderer:2").renderer.template_hash() != base


def test_active_service_selects_one_colour_and_preview_has_its_own_name():
    active = build_service(spec(), OWNER, color="blue", preview=False)
    preview = build_service(spec(), OWNER, color="green", preview=True)
    assert active["metadata"]["name"] == "dress"
    assert active["spec"]["selector"]["tryon.dev/color"] == "blue"
    assert preview["metadata"]["name"] == "dress-preview"
    assert preview["spec"]["selector"]["tryon.dev/color"] == "green"


def test_hpa_targets_the_active_colour():
    hpa = build_hpa(spec(), OWNER, color="green")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "dress-green"


def test_renderer_pods_meet_pod_security_restricted_with_no_setting():
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_the_read_only_renderer_writes_its_model_cache_and_temporary_files_to_an_empty_dir():
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
