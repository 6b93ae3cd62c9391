"""The operator unit tests' fake world: plain fakes of the Reconciler's ports (the cluster, the
registry, the smoke test, the clocks) and the builders that wire a Reconciler to them.

Each fake is just enough of the real thing for the reconciler; a test that needs more (an Event's
message, a refused Deployment) subclasses ``FakeKube`` in its own module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tryon_operator.api.builders import LABEL_COLOR, Owner
from tryon_operator.api.errors import ModelResolutionError, RegistryError
from tryon_operator.gateways.mlflow import ResolvedModel
from tryon_operator.observe.views import (
    ClusterView,
    ColorView,
    HpaView,
    Observed,
    ServiceView,
    SmokeOutcome,
)
from tryon_operator.reconcile import Reconciler
from tryon_operator.settings import OperatorSettings


class FakeKube:
    """Just enough of a cluster: applied Deployments become Ready when ``settle()`` runs."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.deployments: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, str]] = {}
        self.writes: list[str] = []
        self.events: list[str] = []
        self.event_keys: set[str | None] = set()

    def get_tryonmodel(self, namespace, name):
        return self.body

    def observe(self, namespace, name):
        views = {}
        for color in ("blue", "green"):
            dep = self.deployments.get(f"{name}-{color}")
            if dep is None:
                views[color] = ColorView()
                continue
            ready = dep["replicas"] if dep["ready"] else 0
            views[color] = ColorView(True, dep["replicas"], dep["version"], dep["hash"], 1, 1,
                                     dep["replicas"], dep["replicas"], ready, ready)

        def svc(n):
            sel = self.services.get(n)
            return ServiceView(sel is not None, dict(sel or {}), ((80, "http"),))

        return ClusterView(Observed(blue=views["blue"], green=views["green"]), svc(name),
                           svc(f"{name}-preview"), HpaView())

    def apply(self, obj):
        meta = obj["metadata"]
        self.writes.append(f"apply {obj['kind']} {meta['name']}")
        if obj["kind"] == "Deployment":
            tmpl = obj["spec"]["template"]["metadata"]
            self.deployments[meta["name"]] = {
                "replicas": obj["spec"]["replicas"], "ready": False,
                "version": tmpl["labels"]["tryon.dev/model-version"],
                "hash": tmpl["annotations"]["tryon.dev/template-hash"]}
        elif obj["kind"] == "Service":
            self.services[meta["name"]] = dict(obj["spec"]["selector"])

    def scale(self, namespace, name, replicas):
        self.writes.append(f"scale {name} {replicas}")
        self.deployments[name]["replicas"] = replicas

    def set_selector_color(self, namespace, service, color):
        self.writes.append(f"select {service} {color}")
        self.services[service][LABEL_COLOR] = color

    def delete_hpa(self, namespace, name):
        self.writes.append("delete hpa")

    def patch_status(self, namespace, name, status):
        self.writes.append("status")
        self.body["status"] = status

    def emit_event(self, owner: Owner, type_, reason, message, key=None):
        """Like the API server: an Event named by a key it has seen is refused."""
        if key is not None and key in self.event_keys:
            return False
        self.event_keys.add(key)
        self.events.append(reason)
        return True

    def settle(self):
        for dep in self.deployments.values():
            dep["ready"] = True


class FakeRegistry:
    """MLflow: one answer for every question (a version, or the error to raise), and the tags."""

    def __init__(self, version="1"):
        self.answer: ResolvedModel | ModelResolutionError = ResolvedModel(version, "run", "s3://x")
        self.tags: list[tuple[str, str]] = []
        self.tag_attempts = 0
        self.refuses_tags = False

    def resolve(self, tracking_uri, ref):
        if isinstance(self.answer, ModelResolutionError):
            raise self.answer
        return self.answer

    def set_version_tag(self, tracking_uri, name, version, key, value):
        self.tag_attempts += 1
        if self.refuses_tags:
            raise RegistryError("MLflow answered 503")
        self.tags.append((version, key))


class FakeSmoke:
    """The smoke test: passes unless a test sets ``passed`` to False."""

    def __init__(self):
        self.passed = True

    def check(self, base_url, version, timeout=None):
        return SmokeOutcome(passed=self.passed)


class Clock:
    """The wall clock the reconciler reads, at 2026-01-01 until a test advances it."""

    def __init__(self):
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


class Ticks:
    """A monotonic clock (seconds) that moves only when a test sets ``now``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class KedaKube(FakeKube):
    """FakeKube whose cluster serves KEDA's ScaledObject (or not) and keeps the ones applied."""

    def __init__(self, body_, served: bool) -> None:
        super().__init__(body_)
        self.served = served
        self.scaled_objects: dict[str, dict] = {}

    def serves_scaled_objects(self) -> bool:
        return self.served

    def apply_scaled_object(self, obj):
        self.writes.append(f"apply ScaledObject {obj['metadata']['name']}")
        self.scaled_objects[obj["metadata"]["name"]] = obj

    def delete_scaled_object(self, namespace, name):
        self.writes.append(f"delete ScaledObject {name}")
        self.scaled_objects.pop(name, None)


def body(**spec):
    """The TryOnModel shop/dress as the API server returns it; ``spec`` adds to its spec."""
    return {"metadata": {"name": "dress", "namespace": "shop", "uid": "u1", "generation": 1},
            "spec": {"model": {"registeredModel": "m"}, "renderer": {"image": "r:1"},
                     "rollout": {"scaleDownDelaySeconds": 5, "postPromotionSeconds": 2}, **spec}}


def fast_settings(**kw: Any) -> OperatorSettings:
    """Settings whose registry poll interval never holds a reconcile back."""
    return OperatorSettings(mlflow_poll_seconds=0.000001, **kw)


K = TypeVar("K", bound=FakeKube)


def reconciler_on(
    kube: FakeKube, registry: FakeRegistry, smoke: FakeSmoke, clock: Clock, *,
    settings: OperatorSettings | None = None, **ports: Any,
) -> Reconciler:  # fmt: skip
    """A Reconciler on these fakes (a second one on the same fakes is a restarted operator);
    ``ports`` adds the optional ones (``signals``, ``monotonic``, ...)."""
    return Reconciler(kube=kube, registry=registry, smoke=smoke, clock=clock,
                      settings=settings or fast_settings(), **ports)  # fmt: skip


def fake_world(
    kube: K, *, settings: OperatorSettings | None = None, **ports: Any
) -> tuple[Reconciler, K, FakeRegistry, FakeSmoke, Clock]:
    """A Reconciler on ``kube`` with a registry answering v1, a passing smoke test and a clock at
    2026-01-01: (reconciler, kube, registry, smoke, clock)."""
    registry, smoke, clock = FakeRegistry(), FakeSmoke(), Clock()
    reconciler = reconciler_on(kube, registry, smoke, clock, settings=settings, **ports)
    return reconciler, kube, registry, smoke, clock


def run(reconciler):
    """One reconcile of shop/dress."""
    return reconciler.reconcile("shop", "dress")


def serve_v1(reconciler, kube, clock):
    """Brings v1 up on blue, Ready and tested, taking traffic."""
    run(reconciler)
    kube.settle()
    run(reconciler)
    clock.advance(1)
    run(reconciler)


def flip_to_v2(reconciler, kube, registry, clock):
    """v2 in the registry, then reconciles a second apart with the pods Ready until green serves."""
    registry.answer = ResolvedModel("2", "run", "s3://y")
    for _ in range(4):
        clock.advance(1)
        run(reconciler)
        kube.settle()
