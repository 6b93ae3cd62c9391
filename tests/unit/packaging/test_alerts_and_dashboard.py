"""The chart's alerting rules and Grafana dashboard ask only for series the operator and the
renderer export; promtool checks and unit-tests the rules themselves (make lint, make test)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from tryon_operator.announce.notify import NotifyMetrics
from tryon_operator.metrics import Metrics as OperatorMetrics
from tryon_renderer.metrics import Metrics as RendererMetrics

pytestmark = pytest.mark.unit

CHART = Path(__file__).resolve().parents[3] / "charts" / "tryon-operator"
RULES = CHART / "rules" / "tryon-alerts.yaml"
DASHBOARD = CHART / "dashboards" / "tryon-operator.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_series() -> set[str]:
    """Every series name the three metric sets can produce, from their metric families."""
    operator = CollectorRegistry()
    OperatorMetrics(operator)
    NotifyMetrics(operator)
    registries = [operator, RendererMetrics().registry]
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def asked_series(expressions: list[str]) -> set[str]:
    return {name for e in expressions for name in re.findall(r"\b(tryon_[a-z_]+)\b", e)}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_every_alert_asks_for_series_that_are_exported() -> None:
    asked = asked_series(rule_expressions())
    assert asked and asked <= exported_series(), asked - exported_series()


def test_every_dashboard_panel_asks_for_series_that_are_exported() -> None:
    asked = asked_series(dashboard_expressions())
    assert asked and asked <= exported_series(), asked - exported_series()


def test_the_dashboard_covers_rollouts_flip_latency_rollbacks_and_the_serving_signals() -> None:
    asked = asked_series(dashboard_expressions())
    wanted = {
        "tryon_active_version_info",
        "tryon_rollouts_total",
        "tryon_promotion_latency_seconds_bucket",
        "tryon_request_duration_seconds_bucket",
        "tryon_in_flight_requests",
        "tryon_queue_depth",
        "tryon_ready",
    }
    assert wanted <= asked, wanted - asked


def test_alerts_name_a_severity_a_summary_and_a_description() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
