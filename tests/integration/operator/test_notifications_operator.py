"""Issue 9 end to end: the real operator process on the real control plane and MLflow server,
with a real webhook receiver on loopback. A promotion, a post-promotion rollback and a
smoke-test rejection each produce Slack messages, audit JSON lines, Events, status.history
entries and MLflow tags; a dead generic webhook is reported and holds nothing up; the webhook
secrets never reach the operator's log."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kubernetes import client
from tryon_operator.announce.audit import parse_audit_line

from tests.support.cluster import wait_for

from .webhook_receiver import Answer, running_receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

FAULT = "sim.tryon.dev/fault"
SLACK_PATH = "/services/T0TRYON/B0TRYON/slackSECRETk3y"
HOOK_PATH = "/hooks/genericSECRETt0ken"
SECRETS = ("slackSECRETk3y", "genericSECRETt0ken", "bearerSECRETtok")


def slack_kinds(receiver) -> list[tuple[str, str]]:
    """(title, version) of each Slack message, in arrival order."""
    out = []
    for r in receiver.on(SLACK_PATH):
        fields = {f["title"]: f["value"] for f in r.body["attachments"][0]["fields"]}
        out.append((r.body["text"].split("*")[1], fields["Version"].split(" → ")[-1]))
    return out


def test_rollout_decisions_are_notified_audited_and_recorded(
        operator_factory, registry, create_tom, smoke, healthy_on, kube_api, kube_cluster,
        mlflow_server, capsys):
    with running_receiver() as receiver:
        receiver.routes[HOOK_PATH] = Answer(500)  # the generic webhook is down all along
        operator = operator_factory(
            smoke.url,
            TRYON_NOTIFY_SLACK_URL=receiver.url(SLACK_PATH),
            TRYON_NOTIFY_WEBHOOK_URL=receiver.url(HOOK_PATH),
            TRYON_NOTIFY_WEBHOOK_TOKEN="bearerSECRETtok",
            TRYON_NOTIFY_MAX_ATTEMPTS="2",
            TRYON_NOTIFY_BACKOFF_SECONDS="0.1",
            TRYON_NOTIFY_BREAKER_THRESHOLD="2",
            TRYON_NOTIFY_BREAKER_COOLDOWN_SECONDS="120",
        )
        v1, v2, v3 = registry.add_version(), registry.add_version(), registry.add_version()
        registry.set_alias("production", v1)
        tom = create_tom("dress", registry.name,
                         rollout={"postPromotionSeconds": 60, "scaleDownDelaySeconds": 60})
        tom.wait(healthy_on(v1, "blue"), 90, "Healthy on v1")

        # promotion: v2 to green
        registry.set_alias("production", v2)
        tom.wait(lambda s: s.get("activeColor") == "green" and s.get("activeVersion") == v2,
                 60, "v2 promoted to green")
        wait_for(lambda: ("Promoted", v2) in slack_kinds(receiver), 20, "Slack: v2 promoted")

        # rollback after promotion: green's pods crash-loop, traffic returns to warm blue
        core = client.CoreV1Api(kube_api)
        for pod in core.list_namespaced_pod(tom.namespace,
                                            label_selector="tryon.dev/color=green").items:
            core.patch_namespaced_pod(pod.metadata.name, tom.namespace,
                                      {"metadata": {"labels": {FAULT: "crashloop"}}})
        tom.wait(lambda s: v2 in s.get("rejectedVersions", []) and s.get("activeVersion") == v1,
                 90, "v2 rolled back to v1 on blue")
        wait_for(lambda: ("Rolled back", v2) in slack_kinds(receiver), 20,
                 "Slack: v2 rolled back")

        # rejection before promotion: v3 fails the smoke test, traffic never moves
        smoke.failing_versions.add(v3)
        registry.set_alias("production", v3)
        tom.wait(lambda s: v3 in s.get("rejectedVersions", []) and s.get("rollout") is None,
                 60, "v3 rejected")
        wait_for(lambda: ("Rejected", v3) in slack_kinds(receiver), 20, "Slack: v3 rejected")
        wait_for(lambda: "NotificationFailed" in tom.events(), 20,
                 "the dead webhook reported as an Event")
        operator.stop()
        log = operator.log_path.read_text(errors="replace")

    # -- Slack messages: every decision people care about, in order, exactly once each
    kinds = slack_kinds(receiver)
    assert kinds[:2] == [("Rollout started", v1), ("Promoted", v1)]
    for expected in [("Rollout started", v2), ("Promoted", v2), ("Rolled back", v2),
                     ("Degraded", v2), ("Rollout started", v3), ("Rejected", v3)]:
        assert kinds.count(expected) == 1, (expected, kinds)
    assert kinds.index(("Promoted", v2)) < kinds.index(("Rolled back", v2)) < \
        kinds.index(("Rejected", v3))
    # the dead webhook got a bounded number of tries (2 attempts, then the breaker holds)
    assert 2 <= len(receiver.on(HOOK_PATH)) <= 3
    assert receiver.on(HOOK_PATH)[0].headers["Authorization"] == "Bearer bearerSECRETtok"
    assert receiver.on(HOOK_PATH)[0].body["schema"] == "tryon.dev/notification/v1"

    # -- audit lines: one JSON line per decision, with versions, colours and evidence
    records = [r for r in map(parse_audit_line, log.splitlines()) if r is not None]
    ours = [r for r in records if r["tryOnModel"] == f"{tom.namespace}/dress"]
    decisions = [r["decision"] for r in ours]
    for decision in ("resolve", "scale", "smoke", "flip", "rollback", "reject", "degrade"):
        assert decision in decisions, (decision, decisions)
    flip = next(r for r in ours if r["decision"] == "flip" and r["version"] == v2)
    assert (flip["color"], flip["previousColor"], flip["previousVersion"]) == \
        ("green", "blue", v1)
    assert flip["registeredModel"] == registry.name
    rollback = next(r for r in ours if r["decision"] == "rollback")
    assert (rollback["version"], rollback["color"], rollback["previousColor"]) == \
        (v2, "green", "blue")
    # kwok may show the pods not Ready before it shows them crash-looping: either is the cause
    assert rollback["reason"] == "RolledBack" and rollback["evidence"]["readyPods"] == "0/1"
    assert "failed after promotion" in rollback["evidence"]["detail"]
    reject = next(r for r in ours if r["decision"] == "reject")
    assert reject["version"] == v3 and "smoke test failed" in reject["evidence"]["detail"]
    # every audit line is a whole line of its own (no logger prefix to strip)
    assert all(line.startswith("{") for line in log.splitlines() if '"audit":' in line)

    # -- no webhook secret anywhere in the operator's output
    for secret in SECRETS:
        assert secret not in log, f"{secret} leaked into the operator log"

    # -- Events, status.history and MLflow tags
    tom.wait_events("Promoted", "RolledBack", "Degraded", "NotificationFailed")
    history = tom.status()["history"]
    promoted_v2 = [h for h in history if h["version"] == v2]
    assert promoted_v2[-1]["outcome"] == "RolledBack"
    assert promoted_v2[-1]["promotedAt"] and promoted_v2[-1]["previousVersion"] == v1
    cause = promoted_v2[-1]["reason"]
    assert cause in ("CrashLoop", "LostReadiness")
    assert next(h for h in history if h["version"] == v3)["reason"] == "SmokeTestFailed"
    assert "replaced by version" in registry.tags(v1)["tryon.dev/stopped"]
    assert "serving again" in registry.tags(v1)["tryon.dev/promoted"]
    assert cause in registry.tags(v2)["tryon.dev/rejected"]
    assert "SmokeTestFailed" in registry.tags(v3)["tryon.dev/rejected"]

    # -- the history view
    view = subprocess.run(
        [sys.executable, "-m", "tryon_operator.ctl", "history", "dress", "-n", tom.namespace,
         "--kubeconfig", kube_cluster.kubeconfig, "--mlflow", mlflow_server.tracking_uri],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"version {v2} on green:" in view and f"rolled back: {cause}" in view
    assert f"version {v1} on blue:" in view and f"replaced by version {v2}" in view
    assert f"version {v1} on blue again:" in view and "now (serving)" in view

    with capsys.disabled():  # samples for the notes
        slack = {r.body["text"].split("*")[1]: r.body for r in receiver.on(SLACK_PATH)}
        print("\n--- Slack: promoted ---\n" + json.dumps(slack["Promoted"], indent=1,
                                                       ensure_ascii=False))
        print("--- Slack: rolled back ---\n" + json.dumps(slack["Rolled back"], indent=1,
                                                        ensure_ascii=False))
        print("--- audit lines ---")
        for line in log.splitlines():
            record = parse_audit_line(line)
            if record and record["decision"] in ("flip", "rollback", "reject", "degrade"):
                print(line)
        print("--- history view ---\n" + view)
