"""The CRD (judged by the real API server) and the pydantic models agree on what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from tryon_operator.api.models import TryOnModelSpec
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
VALID = sorted(EXAMPLES.glob("tryonmodel-*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))


def dry_run_create(kube_api, namespace, body):
    return client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All",
        field_validation="Strict")


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_every_example_is_accepted_by_the_api_server_and_the_models(path, kube_api, namespace,
                                                                     crd):
    body = yaml.safe_load(path.read_text())
    body["metadata"].pop("namespace", None)
    stored = dry_run_create(kube_api, namespace, body)
    # The defaults the API server fills in are the ones the models assume.
    assert TryOnModelSpec.model_validate(stored["spec"]) == TryOnModelSpec.model_validate(
        body["spec"])


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_invalid_example_is_rejected_by_the_api_server_and_the_models(
        path, kube_api, namespace, crd):
    body = yaml.safe_load(path.read_text())
    with pytest.raises(ApiException) as err:
        dry_run_create(kube_api, namespace, body)
    assert err.value.status in (400, 422)
    assert "spec" in err.value.body  # a readable message naming the field
    with pytest.raises(ValidationError):
        TryOnModelSpec.model_validate(body["spec"])


def test_kubectl_get_tom_shows_colour_version_preview_and_phase(kube_cluster, kube_api, crd,
                                                                namespace):
    body = yaml.safe_load((EXAMPLES / "tryonmodel-pinned.yaml").read_text())
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "shirt",
        {"status": {"activeColor": "blue", "activeVersion": "7", "previewVersion": "8",
                    "phase": "Progressing"}})

    header, row = kube_cluster.kubectl("get", "tom", "-n", namespace).splitlines()[:2]

    assert header.split() == ["NAME", "ACTIVE", "VERSION", "PREVIEW", "PHASE", "AGE"]
    assert row.split()[:5] == ["shirt", "blue", "7", "8", "Progressing"]


def test_kubectl_explain_describes_the_rollout_fields(kube_cluster, crd):
    out = wait_for(lambda: kube_cluster.kubectl("explain", "tom.spec.rollout", check=False), 30,
                   "kubectl explain")
    assert "progressDeadlineSeconds" in out
    assert "rolled back" in out
