"""What ``tryonctl`` prints and its exit codes, from the TryOnModel as the API returns it."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
from tryon_operator.ctl import views
from tryon_operator.ctl.cli import build_parser
from tryon_operator.ctl.views import EventLine, Pods

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).isoformat()


def tom(phase="Healthy", generation=1, observed=1, rollout=None, paused=False, annotations=None,
        conditions=(), **status):
    return {
        "metadata": {"name": "dress", "namespace": "shop", "generation": generation,
                     "creationTimestamp": ago(3 * 86400), "annotations": annotations or {}},
        "spec": {"model": {"registeredModel": "tryon-vton"}, "paused": paused},
        "status": {"observedGeneration": observed, "phase": phase, "activeColor": "blue",
                   "activeVersion": "6",
                   "model": {"registeredModel": "tryon-vton", "selector": "alias production",
                             "version": "7"},
                   "rollout": rollout, "conditions": list(conditions), **status},
    }


def awaiting(version="7"):
    return {"phase": "AwaitingPromotion", "color": "green", "version": version,
            "templateHash": "h", "replicas": 2, "startedAt": ago(125), "smokePassed": True}


def condition(type_, status, reason, message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": ago(30)}


@pytest.mark.parametrize(("body", "code"), [
    (tom("Healthy"), 0),
    (tom("Degraded"), 1),
    (tom("Progressing", rollout=awaiting()), None),
    (tom("Paused", paused=True), None),
    (tom("Healthy", generation=2, observed=1), None),  # the operator has not seen the edit yet
])
def test_exit_code_follows_the_phase_once_status_is_current(body, code):
    assert views.exit_code(body) == code


def test_status_shows_what_serves_what_waits_and_why():
    body = tom("Progressing", rollout=awaiting(), rejectedVersions=["5"],
               annotations={"tryon.dev/promote": "7"},
               conditions=[condition("Progressing", "True", "AwaitingPromotion",
                                     "version 7 on green")])
    events = [EventLine(NOW - timedelta(seconds=12), "Normal", "AwaitingPromotion", "tested")]

    text = views.render_status(body, {"blue": Pods(2, 2), "green": Pods(1, 2)}, events, NOW)

    assert "Name:        shop/dress" in text
    assert "Message:     AwaitingPromotion: version 7 on green" in text
    assert "Model:       tryon-vton alias production -> version 7" in text
    assert "Active:      blue, version 6, 2/2 pods Ready" in text
    assert "Preview:     green, version 7, 1/2 pods Ready" in text
    assert "Rollout:     AwaitingPromotion, version 7 on green, 2m, smoke test passed" in text
    assert "Rejected:    5" in text
    assert "Requests:    tryon.dev/promote=7 (not yet acted on)" in text
    assert "`tryonctl promote dress`" in text
    assert "12s  Normal  AwaitingPromotion  tested" in text


def test_status_says_when_the_operator_has_not_seen_the_latest_spec():
    text = views.render_status(tom(generation=3, observed=2), {}, [], NOW)
    assert "Healthy (spec change not seen yet)" in text


def test_a_rejected_template_of_the_serving_version_is_listed():
    text = views.render_status(tom(rejectedTemplateHash="abc"), {}, [], NOW)
    assert "Rejected:    pod template abc of 6" in text


def test_tags_owed_to_mlflow_are_listed():
    owed = [{"registeredModel": "tryon-vton", "version": "7", "key": "tryon.dev/rejected",
             "value": "shop/dress: smoke"}]
    text = views.render_status(tom(pendingRegistryTags=owed), {}, [], NOW)
    assert "MLflow tags: tryon.dev/rejected on 7 (not sent yet: MLflow was unreachable)" in text


def test_nothing_owed_prints_no_mlflow_tag_line():
    assert "MLflow tags:" not in views.render_status(tom(), {}, [], NOW)


@pytest.mark.parametrize(("body", "line"), [
    (tom("Healthy"), "Healthy - version 6 serves on blue"),
    (tom("Degraded", conditions=[condition("Degraded", "True", "SmokeTestFailed", "blank")]),
     "Degraded - SmokeTestFailed: blank"),
    (tom("Healthy", generation=2), "Healthy - waiting for the operator to see the latest spec"),
])
def test_summary_line_reads_like_argo_rollouts_status(body, line):
    assert views.summary(body) == line


def test_waiting_for_names_the_command_that_moves_on():
    assert "tryonctl resume dress" in views.waiting_for(tom("Paused", paused=True))
    assert views.waiting_for(tom("Healthy")) is None


def test_list_has_one_aligned_row_per_object_with_its_namespace_when_asked():
    other = tom("Progressing", rollout=awaiting())
    other["metadata"] = {**other["metadata"], "name": "coat", "namespace": "outlet"}
    text = views.render_list([tom(), other], NOW, namespaces=True).splitlines()
    assert text[0].split() == ["NAMESPACE", "NAME", "PHASE", "ACTIVE", "VERSION", "PREVIEW",
                               "ROLLOUT", "MODEL", "REJECTED", "AGE"]
    assert text[1].split() == ["outlet", "coat", "Progressing", "blue", "6", "green/7",
                               "AwaitingPromotion", "7", "-", "3d"]
    assert text[2].split()[:2] == ["shop", "dress"]
    assert text[1].index("Progressing") == text[0].index("PHASE")


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (125, "2m"), (7200, "2h"),
                                                (3 * 86400, "3d")])
def test_age_is_kubectl_style(seconds, text):
    assert views.age(NOW - timedelta(seconds=seconds), NOW) == text


def test_timeouts_accept_durations():
    args = build_parser().parse_args(["status", "dress", "--watch", "--timeout", "2m"])
    assert args.timeout == 120
    with pytest.raises(SystemExit):
        build_parser().parse_args(["status", "dress", "--timeout", "soon"])


def test_console_scripts_point_at_callables():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("tryonctl", "kubectl-tryon"):
        module, func = scripts[name].split(":")
        assert callable(getattr(import_module(module), func))
