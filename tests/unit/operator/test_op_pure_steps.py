"""The reconcile's other pure decisions, table-tested like the rollout's: which repairs self-heal
plans (heal.plan), what becomes of each request annotation (requests.plan), and what each
status condition says (status.wanted_conditions). Each takes ``Facts``, which hold no ports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tryon_operator.api.builders import Owner
from tryon_operator.api.errors import ModelResolutionError
from tryon_operator.api.models import RolloutState, TryOnModelSpec, TryOnModelStatus
from tryon_operator.decide import decision as d
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.observe.views import ClusterView, ColorView, HpaView, Observed, ServiceView
from tryon_operator.reconcile import heal, requests
from tryon_operator.reconcile.context import Facts, ReconcileContext
from tryon_operator.reconcile.status import wanted_conditions

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = TryOnModelSpec.model_validate(
    {"model": {"registeredModel": "m"}, "renderer": {"image": "r:1", "replicas": 2}})
H = SPEC.renderer.template_hash()
PORTS = ((SPEC.service.port, "http"),)


def running(version: str = "1", replicas: int = 2, **kw) -> ColorView:
    base = dict(exists=True, replicas=replicas, version=version, template_hash=H, generation=1,
                observed_generation=1, status_replicas=replicas, updated_replicas=replicas,
                ready_replicas=replicas, available_replicas=replicas)
    base.update(kw)
    return ColorView(**base)


def service(color: str | None) -> ServiceView:
    selector = {"app.kubernetes.io/name": "tryon-renderer", "app.kubernetes.io/instance": "dress",
                "tryon.dev/color": color or "none"}
    return ServiceView(True, selector, PORTS)


def cluster(blue: ColorView | None = None, green: ColorView | None = None,
            active: ServiceView | None = None, preview: ServiceView | None = None) -> ClusterView:
    """Blue serves 2 pods of version 1 behind both Services unless told otherwise."""
    return ClusterView(Observed(blue=running() if blue is None else blue,
                                green=ColorView() if green is None else green),
                       service("blue") if active is None else active,
                       service("green") if preview is None else preview, HpaView())


def serving(**kw) -> TryOnModelStatus:
    return TryOnModelStatus(active_color="blue", active_version="1", active_template_hash=H, **kw)


def facts(status: TryOnModelStatus, seen: ClusterView, annotations=None, spec=SPEC) -> Facts:
    ctx = ReconcileContext(Owner("dress", "shop", "u1"), spec, "http://mlflow", annotations or {},
                           1)
    return Facts(ctx, status, seen, T0)


def names(repairs: list[heal.Repair]) -> list[str]:
    out = []
    for r in repairs:
        what = type(r).__name__
        detail = getattr(r, "color", None) or getattr(r, "service", None) or ""
        extra = f" {r.replicas}" if isinstance(r, heal.Scale) else ""
        kind = f" {r.kind}" if isinstance(r, heal.Apply) else ""
        out.append(f"{what}{kind} {detail}{extra}".strip())
    return out


ROLLING = RolloutState(phase="Progressing", color="green", version="2", template_hash=H,
                       replicas=2, started_at=T0)


@pytest.mark.parametrize(("status", "seen", "expected"), [
    pytest.param(serving(), cluster(), [], id="all as status says: nothing"),
    pytest.param(serving(), cluster(blue=ColorView()), ["Apply Deployment blue"],
                 id="active Deployment deleted: recreated"),
    pytest.param(serving(), cluster(blue=running(replicas=5)), ["Scale blue 2"],
                 id="active scaled by hand: scaled back"),
    pytest.param(serving(), cluster(blue=running(foreign_template_managers=("kubectl-edit",))),
                 ["RestoreTemplate blue"], id="pod template edited by hand: restored"),
    pytest.param(serving(), cluster(green=running("1", 2)), ["Scale green 0"],
                 id="idle colour running pods: scaled to 0"),
    pytest.param(serving(), cluster(active=service("green")), ["SetSelector blue"],
                 id="active selector moved by hand: restored"),
    pytest.param(serving(), cluster(active=ServiceView()), ["Apply Service blue"],
                 id="active Service deleted: recreated"),
    pytest.param(serving(rollout=ROLLING, preview_color="green", preview_version="2"),
                 cluster(green=ColorView()), ["Apply Deployment green"],
                 id="preview Deployment deleted mid-rollout: recreated"),
    pytest.param(serving(rollout=ROLLING, preview_color="green", preview_version="2"),
                 cluster(green=running("2")), [], id="preview as the rollout wants: nothing"),
])
def test_self_heal_plans_exactly_the_repairs_the_cluster_needs(status, seen, expected):
    _, repairs = heal.plan(facts(status, seen))
    assert names(repairs) == expected


def test_a_paused_object_is_not_healed():
    paused = SPEC.model_copy(update={"paused": True})
    _, repairs = heal.plan(facts(serving(), cluster(blue=ColorView()), spec=paused))
    assert repairs == []


def test_the_preview_selector_following_a_rollout_is_no_repair_worth_telling():
    _, repairs = heal.plan(facts(serving(), cluster(preview=service("blue"))))
    assert [(type(r).__name__, r.heal) for r in repairs] == [("SetSelector", None)]


def want(**kw) -> d.Desired:
    base = dict(version="2", template_hash=H, replicas=2)
    base.update(kw)
    return d.Desired(**base)


@pytest.mark.parametrize(("annotations", "status", "desired", "fulfilled", "expected"), [
    pytest.param({}, serving(), want(), set(), [], id="no request: nothing"),
    pytest.param({"tryon.dev/promote": "2"}, serving(rollout=ROLLING), want(),
                 {"tryon.dev/promote"}, [("tryon.dev/promote", None)],
                 id="promote carried out: removed"),
    pytest.param({"tryon.dev/promote": "2"}, serving(rollout=ROLLING), want(), set(), [],
                 id="promote of the rollout in progress: waits"),
    pytest.param({"tryon.dev/promote": "1"}, serving(), want(), set(),
                 [("tryon.dev/promote", "version 1 already serves on blue")],
                 id="promote of what serves: removed with why"),
    pytest.param({"tryon.dev/promote": "7"}, serving(), want(paused=True), set(), [],
                 id="paused: requests wait"),
    pytest.param({"tryon.dev/retry": "3"}, serving(), want(), set(),
                 [("tryon.dev/retry", "not rejected")], id="retry's problem is passed on"),
])
def test_each_request_annotation_is_removed_once_done_or_impossible(
        annotations, status, desired, fulfilled, expected):
    problem = "not rejected" if "tryon.dev/retry" in annotations else None
    done = requests.plan(facts(status, cluster(), annotations), desired, fulfilled, problem)
    assert done == expected


RESOLVED = ResolvedModel("2", "run", "s3://m/2")


@pytest.mark.parametrize(("status", "seen", "resolution", "expected"), [
    pytest.param(serving(), cluster(), RESOLVED,
                 {"ModelResolved": (True, "Resolved"), "Progressing": (False, "RolloutComplete"),
                  "Degraded": (False, "AsExpected"), "Ready": (True, "ActiveReady")},
                 id="serving, resolved"),
    pytest.param(TryOnModelStatus(), cluster(blue=ColorView()),
                 ModelResolutionError("AliasNotFound", "no alias production"),
                 {"ModelResolved": (False, "AliasNotFound"), "Progressing": (False, "NoRollout"),
                  "Degraded": (False, "AsExpected"), "Ready": (False, "NoActiveColor")},
                 id="nothing yet, alias missing"),
    pytest.param(serving(rollout=ROLLING), cluster(green=running("2", unschedulable_pods=2,
                                                                 unschedulable_message="no GPU")),
                 RESOLVED,
                 {"ModelResolved": (True, "Resolved"),
                  "Progressing": (True, "PreviewUnschedulable"),
                  "Degraded": (False, "AsExpected"), "Ready": (True, "ActiveReady")},
                 id="preview unschedulable: said within seconds"),
    pytest.param(serving(rollout=ROLLING),
                 cluster(green=running("2", image_unavailable_pods=1,
                                       image_unavailable_message="ErrImagePull: x")),
                 RESOLVED,
                 {"ModelResolved": (True, "Resolved"),
                  "Progressing": (True, "PreviewImageUnavailable"),
                  "Degraded": (False, "AsExpected"), "Ready": (True, "ActiveReady")},
                 id="preview image missing: named before unschedulable"),
    pytest.param(serving(), cluster(blue=running(crashlooping_pods=1, ready_replicas=1)), RESOLVED,
                 {"ModelResolved": (True, "Resolved"), "Progressing": (False, "RolloutComplete"),
                  "Degraded": (True, "ActiveCrashLooping"), "Ready": (False, "ActiveNotReady")},
                 id="active crash-looping: Degraded and not Ready"),
])
def test_each_condition_says_what_the_cluster_shows(status, seen, resolution, expected):
    wanted = wanted_conditions(facts(status, seen), want(), resolution, None)
    assert {t: (value, reason) for t, value, reason, _ in wanted} == expected


def test_a_gpu_note_replaces_the_schedulers_words_in_progressing():
    seen = cluster(green=running("2", unschedulable_pods=1, unschedulable_message="0/3 nodes"))
    wanted = wanted_conditions(facts(serving(rollout=ROLLING), seen), want(), RESOLVED,
                               "preview needs 2 nvidia.com/gpu")
    progressing = next(w for w in wanted if w[0] == "Progressing")
    assert progressing[3].endswith("1 pod(s) cannot be scheduled: preview needs 2 nvidia.com/gpu")


