"""The spec models: defaults and validation that mirror the CRD."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from tryon_operator.api.models import RolloutState, TryOnModelSpec, TryOnModelStatus, parse_status
from tryon_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit


def spec(model=None, **extra):
    return TryOnModelSpec.model_validate({
        "model": model or {"registeredModel": "m"}, "renderer": {"image": "r:1"}, **extra})


def test_no_selector_means_alias_production():
    assert spec().model.selector == ("alias", "production")


@pytest.mark.parametrize(("model", "selector"), [
    ({"registeredModel": "m", "alias": "champion"}, ("alias", "champion")),
    ({"registeredModel": "m", "stage": "Production"}, ("stage", "Production")),
    ({"registeredModel": "m", "version": "7"}, ("version", "7")),
])
def test_one_selector_is_followed(model, selector):
    assert spec(model).model.selector == selector


def test_two_selectors_are_rejected():
    with pytest.raises(ValidationError, match="at most one"):
        spec({"registeredModel": "m", "alias": "a", "version": "1"})


def test_rollout_defaults_match_the_design():
    rollout = spec().rollout
    assert (rollout.auto_promote, rollout.progress_deadline_seconds,
            rollout.scale_down_delay_seconds, rollout.post_promotion_seconds,
            rollout.smoke_test.enabled) == (True, 600, 300, 120, True)


def test_status_round_trips_through_json():
    status = TryOnModelStatus(active_color="blue", active_version="3", rejected_versions=("2",))
    assert parse_status(status.to_patch()) == status


SERVING = TryOnModelStatus(active_color="blue", active_version="3", rejected_versions=("2",),
                           rejected_template_hash="bad")

REJECTED_CASES = [
    # name, version, template hash, rejected
    ("a rolled-back version", "2", "good", True),
    ("a version never rolled back", "4", "good", False),
    ("the serving version with its rejected template", "3", "bad", True),
    ("the serving version with another template", "3", "good", False),
]


@pytest.mark.parametrize(("version", "template_hash", "rejected"),
                         [c[1:] for c in REJECTED_CASES], ids=[c[0] for c in REJECTED_CASES])
def test_is_rejected(version, template_hash, rejected):
    assert SERVING.is_rejected(version, template_hash) is rejected


def rollout(version: str, template_hash: str = "new") -> RolloutState:
    return RolloutState(phase="Progressing", color="green", version=version,
                        template_hash=template_hash, replicas=1,
                        started_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_rejecting_a_new_version_keeps_the_latest_ones_only():
    status = SERVING.rejecting(rollout("4"), 2).rejecting(rollout("5"), 2)
    assert status.rejected_versions == ("4", "5")


def test_rejecting_the_serving_version_rejects_its_template_only():
    status = SERVING.rejecting(rollout("3", "other"), 20)
    assert (status.rejected_versions, status.rejected_template_hash) == (("2",), "other")


def test_unreadable_status_falls_back_to_empty():
    assert parse_status({"activeColor": "purple"}) == TryOnModelStatus()


def test_settings_come_from_the_environment():
    settings = OperatorSettings.from_env({"TRYON_RESYNC_SECONDS": "2",
                                          "MLFLOW_TRACKING_URI": "http://x:5000"})
    assert settings.resync_seconds == 2
    assert settings.mlflow_tracking_uri == "http://x:5000"
    assert settings.service_url("dress-preview", "shop", 80) == \
        "http://dress-preview.shop.svc:80"


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("tryonmodel-*.yaml")), ids=lambda p: p.name)
def test_examples_validate_against_the_models(path):
    TryOnModelSpec.model_validate(yaml.safe_load(path.read_text())["spec"])


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_invalid_examples_are_rejected_by_the_models(path):
    with pytest.raises(ValidationError):
        TryOnModelSpec.model_validate(yaml.safe_load(path.read_text())["spec"])
