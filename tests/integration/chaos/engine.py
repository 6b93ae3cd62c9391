"""A seeded chaos engine: rollouts of one TryOnModel with faults injected at random moments.

Every random choice (target, faults, their moments and parameters) comes from one
``random.Random(seed)``, so a failing run is replayed with the same seed. What cannot be seeded
is the timing of the operator and the control plane; the printed per-iteration log says what was
injected when.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any, ClassVar

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tryon_operator.api.models import RolloutSpec, TryOnModelSpec
from tryon_operator.api.vocabulary import GROUP, PLURAL, VERSION

from tests.integration.chaos.ha import LeaderKill, LeaderPause, double_actions
from tests.integration.chaos.invariants import (
    COLOR,
    FAULT,
    Expectations,
    RegistrySnapshot,
    Snapshot,
    Violation,
    check_all,
    missing_rejected_tags,
)

ALIAS = "production"
TEST_TAG = "chaos.tryon.dev/owner"
SETTLE_TIMEOUT_S = 90.0
STABLE_FOR_S = 2.0
INVARIANT_GRACE_S = 10.0
FAULT_WINDOW_S = 7.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Recovery:
    """Failure injected into the freshly promoted colour -> Service back on the old one."""

    iteration: int
    seconds: float | None  # None: traffic did not come back within the bound
    faults: tuple[str, ...]


@dataclass
class Stats:
    seed: int
    iterations: int = 0
    targets: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    violations: list[tuple[int, Violation]] = field(default_factory=list)
    transient: int = 0  # violations seen once that cleared within the grace period
    recoveries: list[Recovery] = field(default_factory=list)
    conflicts: int = 0  # 409s the concurrent writers got
    writes: int = 0
    late_tags: int = 0  # rejected-version tags missing at first look after an MLflow outage
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)

    def table(self) -> str:
        rows = [f"chaos summary: seed={self.seed} iterations={self.iterations} "
                f"wall={sum(self.seconds):.0f}s (per iteration p50 "
                f"{percentile(self.seconds, 50) if self.seconds else 0:.1f}s)"]
        rows.append(f"  {'target':<26}{'count':>7}")
        rows += [f"  {k:<26}{v:>7}" for k, v in sorted(self.targets.items())]
        rows.append(f"  {'settled outcome':<26}{'count':>7}")
        rows += [f"  {k:<26}{v:>7}" for k, v in sorted(self.outcomes.items())]
        rows.append(f"  {'fault':<26}{'injected':>9}{'skipped':>9}")
        for kind in sorted(set(self.faults) | set(self.skipped)):
            rows.append(f"  {kind:<26}{self.faults[kind]:>9}{self.skipped[kind]:>9}")
        rows.append(f"  concurrent writes {self.writes}, of which 409 Conflict {self.conflicts}")
        rows.append(f"  rejected-version tags sent late (owed during an MLflow outage): "
                    f"{self.late_tags}")
        done = [r.seconds for r in self.recoveries if r.seconds is not None]
        if done:
            rows.append(f"  failure -> traffic back on the healthy colour: n={len(done)} "
                        f"p50={percentile(done, 50):.2f}s max={max(done):.2f}s")
        else:
            rows.append("  failure -> traffic back on the healthy colour: no measurement")
        missed = len(self.recoveries) - len(done)
        if missed:
            rows.append(f"  traffic NOT back within the bound: {missed}")
        rows.append(f"  invariant violations: {len(self.violations)} "
                    f"(transient, cleared within {INVARIANT_GRACE_S:.0f}s: {self.transient})")
        rows += [f"    iteration {i}: {v}" for i, v in self.violations]
        return "\n".join(rows)


# ----------------------------------------------------------------- the world the engine drives


@dataclass
class World:
    """Handles on everything the chaos run touches."""

    kubeconfig: str
    namespace: str
    name: str
    operator: Any  # tests.integration.operator.conftest.OperatorProcess
    mlflow: Any  # devservers.MlflowServer
    mlflow_client: Any
    smoke: Any  # SmokeStandIn
    registered_model: str
    standby: Any = None  # a second replica under leader election (``make chaos``: TRYON_CHAOS_HA)
    api: client.ApiClient = field(init=False)

    @property
    def replicas(self) -> list[Any]:
        return [p for p in (self.operator, self.standby) if p is not None]

    def __post_init__(self) -> None:
        self.api = config.new_client_from_config(config_file=self.kubeconfig)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def tom(self) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                        self.name)

    def status(self) -> dict[str, Any]:
        return self.tom().get("status") or {}

    def patch_spec(self, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                   self.name, {"spec": spec})

    def selector_color(self) -> str | None:
        try:
            svc = self.core.read_namespaced_service(self.name, self.namespace)
        except ApiException:
            return None
        return (svc.spec.selector or {}).get(COLOR)

    def pods(self, color: str) -> list[Any]:
        return [p for p in self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{COLOR}={color}").items
            if not p.metadata.deletion_timestamp]


# ----------------------------------------------------------------- faults


class Fault:
    """One kind of fault. ``inject`` returns False when there was nothing to hit."""

    name: ClassVar[str]
    weight: ClassVar[float] = 1.0
    may_fail_pods: ClassVar[bool] = False  # can make a good version fail legitimately

    def inject(self, run: ChaosRun) -> bool:
        raise NotImplementedError


class OperatorKill(Fault):
    name, weight = "operator-sigkill+restart", 2.0

    def inject(self, run: ChaosRun) -> bool:
        run.world.operator.stop(kill=True)
        time.sleep(run.rng.uniform(0.0, 1.5))
        run.world.operator.start()
        return True


class DeleteDeployment(Fault):
    name, may_fail_pods = "delete-deployment", True

    def inject(self, run: ChaosRun) -> bool:
        names = [d.metadata.name for d in run.world.apps.list_namespaced_deployment(
            run.world.namespace).items]
        if not names:
            return False
        run.world.apps.delete_namespaced_deployment(run.rng.choice(sorted(names)),
                                                    run.world.namespace)
        return True


class DeleteService(Fault):
    name = "delete-service"

    def inject(self, run: ChaosRun) -> bool:
        names = [s.metadata.name for s in run.world.core.list_namespaced_service(
            run.world.namespace).items]
        if not names:
            return False
        run.world.core.delete_namespaced_service(run.rng.choice(sorted(names)),
                                                 run.world.namespace)
        return True


class DeletePods(Fault):
    name, may_fail_pods = "delete-pods", True

    def inject(self, run: ChaosRun) -> bool:
        colors = [c for c in ("blue", "green") if run.world.pods(c)]
        if not colors:
            return False
        pods = run.world.pods(run.rng.choice(colors))
        for pod in pods:
            run.world.core.delete_namespaced_pod(pod.metadata.name, run.world.namespace,
                                                 grace_period_seconds=0)
        return bool(pods)


# The TryOnModel's rollout settings (ChaosRun.start), its rollback window as the operator derives
# it, and how much of that window must be left for a crash to count as inside it.
ROLLOUT_SPEC = {
    "progressDeadlineSeconds": 10,
    "scaleDownDelaySeconds": 2,
    "postPromotionSeconds": 4,
}
ROLLBACK_WINDOW_SECONDS = float(RolloutSpec.model_validate(ROLLOUT_SPEC).rollback_window_seconds)
WINDOW_MARGIN_SECONDS = 1.0


def window_over(rollout: dict[str, Any]) -> bool:
    """True once the flipped rollout's window has (nearly) ended: status may still show it in
    flight while no leader is there to finish it, but whoever leads next finishes it and scales
    the old colour away, so a crash then is a failure of the serving colour, not of a rollout."""
    promoted_at = rollout.get("promotedAt")
    if rollout.get("phase") != "PostPromotion" or not promoted_at:
        return False
    ends = datetime.fromisoformat(promoted_at).timestamp() + ROLLBACK_WINDOW_SECONDS
    return time.time() > ends - WINDOW_MARGIN_SECONDS


class FailPods(Fault):
    """Crash-loop the pods of the colour being rolled out (before or after the flip)."""

    name, may_fail_pods = "crash-rollout-pods", True

    def inject(self, run: ChaosRun) -> bool:
        rollout = run.world.status().get("rollout")
        if not rollout or window_over(rollout):
            return False
        color = rollout["color"]
        after_flip = rollout.get("phase") == "PostPromotion"
        injected = run.crash_pods(color)
        if injected and after_flip:
            run.measure_flip_back(color, injected)
        return injected is not None


class MlflowOutage(Fault):
    name = "mlflow-down+up"

    def inject(self, run: ChaosRun) -> bool:
        run.world.mlflow.stop()
        run.mlflow_was_down = True
        time.sleep(run.rng.uniform(1.0, 4.0))
        run.world.mlflow.start()
        return True


class ConcurrentWriters(Fault):
    """Writes beside the operator: selector flips, replica changes (read-modify-write, so
    they race with the operator and get 409s), TryOnModel annotations."""

    name = "concurrent-writers"

    def inject(self, run: ChaosRun) -> bool:
        seed = run.rng.random()
        duration = run.rng.uniform(1.5, 3.0)
        thread = threading.Thread(target=self._write, args=(run, Random(seed), duration),
                                  daemon=True)
        thread.start()
        run.background.append(thread)
        return True

    def _write(self, run: ChaosRun, rng: Random, duration: float) -> None:
        world = run.world
        api = config.new_client_from_config(config_file=world.kubeconfig)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        deadline = time.monotonic() + duration
        n = 0
        while time.monotonic() < deadline:
            n += 1
            what = rng.choice(["selector", "replicas", "annotation"])
            try:
                if what == "selector":
                    svc = core.read_namespaced_service(world.name, world.namespace)
                    svc.spec.selector = {**(svc.spec.selector or {}),
                                         COLOR: rng.choice(["blue", "green", "none"])}
                    core.replace_namespaced_service(world.name, world.namespace, svc)
                elif what == "replicas":
                    dep = apps.read_namespaced_deployment(
                        f"{world.name}-{rng.choice(['blue', 'green'])}", world.namespace)
                    dep.spec.replicas = rng.randint(0, 3)
                    apps.replace_namespaced_deployment(dep.metadata.name, world.namespace, dep)
                    run.replica_writes = True
                else:
                    custom.patch_namespaced_custom_object(
                        GROUP, VERSION, world.namespace, PLURAL, world.name,
                        {"metadata": {"annotations": {"chaos.tryon.dev/poke": str(n)}}})
                with run.lock:
                    run.stats.writes += 1
            except ApiException as err:
                with run.lock:
                    run.stats.writes += 1
                    if err.status == 409:
                        run.stats.conflicts += 1
            time.sleep(rng.uniform(0.05, 0.3))


FAULTS: tuple[Fault, ...] = (OperatorKill(), DeleteDeployment(), DeleteService(), DeletePods(),
                             FailPods(), MlflowOutage(), ConcurrentWriters())

HA_FAULTS: tuple[Any, ...] = (LeaderKill(), LeaderPause(), DeleteDeployment(), DeleteService(),
                               DeletePods(), FailPods(), MlflowOutage(), ConcurrentWriters())

TARGETS: dict[str, float] = {
    "good-version": 3.0,
    "smoke-fails": 1.5,
    "crashloop-template": 1.0,
    "never-ready-template": 1.0,
    "template-change": 1.5,
    "crash-after-promotion": 2.0,
}


# ----------------------------------------------------------------- one run


class ChaosRun:
    """Drives iterations against one TryOnModel and collects the statistics."""

    def __init__(self, world: World, seed: int, *, log: Any = print) -> None:
        self.world = world
        self.rng = Random(seed)
        self.stats = Stats(seed)
        self.log = log
        self.lock = threading.Lock()
        self.background: list[threading.Thread] = []
        self.versions: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}
        self.bad_versions: set[str] = set()
        self.mlflow_was_down = False
        self.replica_writes = False
        self.iteration = 0
        self._faults_now: list[str] = []
        self.faults: tuple[Any, ...] = HA_FAULTS if world.standby is not None else FAULTS

    # -------------------------------------------------------------- registry writes (the test's)

    def add_version(self) -> str:
        mc, name = self.world.mlflow_client, self.world.registered_model
        tags = {TEST_TAG: "chaos-test"}
        mv = mc.create_model_version(name, source=f"s3://models/{name}/{len(self.versions) + 1}",
                                     description=f"chaos version {len(self.versions) + 1}",
                                     tags=tags)
        version = str(mv.version)
        self.versions[version] = {"source": mv.source, "run_id": mv.run_id,
                                  "description": mv.description, "tags": tags}
        return version

    def move_alias(self, version: str) -> None:
        self.world.mlflow_client.set_registered_model_alias(self.world.registered_model, ALIAS,
                                                           version)
        self.aliases[ALIAS] = version

    def registry_snapshot(self) -> RegistrySnapshot:
        mc, name = self.world.mlflow_client, self.world.registered_model
        model = mc.get_registered_model(name)
        versions = {
            str(mv.version): {"source": mv.source, "run_id": mv.run_id,
                              "description": mv.description, "status": mv.status,
                              "tags": dict(mv.tags)}
            for mv in mc.search_model_versions(f"name='{name}'")
        }
        return RegistrySnapshot(aliases=dict(model.aliases), description=model.description,
                                model_tags=dict(model.tags), versions=versions)

    # -------------------------------------------------------------- fault helpers

    def crash_pods(self, color: str) -> float | None:
        """Labels the colour's pods crash-looping; returns the moment, None if it had none."""
        pods = self.world.pods(color)
        if not pods:
            return None
        injected = time.monotonic()
        for pod in pods:
            self.world.core.patch_namespaced_pod(pod.metadata.name, self.world.namespace,
                                                 {"metadata": {"labels": {FAULT: "crashloop"}}})
        return injected

    def measure_flip_back(self, color: str, injected: float, bound: float = 30.0) -> None:
        """Polls the Service until it stops selecting ``color``; records the time taken."""
        seconds: float | None = None
        deadline = injected + bound
        while time.monotonic() < deadline:
            current = self.world.selector_color()
            if current is not None and current != color:
                seconds = round(time.monotonic() - injected, 2)
                break
            time.sleep(0.05)
        with self.lock:
            self.stats.recoveries.append(Recovery(self.iteration, seconds,
                                                  tuple(self._faults_now)))

    # -------------------------------------------------------------- setup

    def start(self, spec_overrides: dict[str, Any] | None = None) -> None:
        """Registers v1, creates the TryOnModel and waits until it is Healthy."""
        version = self.add_version()
        self.move_alias(version)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "TryOnModel",
            "metadata": {"name": self.world.name},
            "spec": {
                "model": {"registeredModel": self.world.registered_model},
                "renderer": {"image": "tryon-renderer:chaos", "replicas": 2},
                "rollout": dict(ROLLOUT_SPEC),
                **(spec_overrides or {}),
            },
        }
        self.world.custom.create_namespaced_custom_object(GROUP, VERSION, self.world.namespace,
                                                          PLURAL, body)
        self.settle(version)

    # -------------------------------------------------------------- one iteration

    def run_iteration(self) -> None:
        self.iteration += 1
        started = time.monotonic()
        self.mlflow_was_down = False
        self.replica_writes = False
        self.background = []
        self._faults_now = []
        target = self.rng.choices(list(TARGETS), weights=list(TARGETS.values()))[0]
        count = self.rng.choice([1, 1, 2, 2, 3])
        faults = self.rng.choices(self.faults, weights=[f.weight for f in self.faults], k=count)
        began = datetime.now(UTC)
        moments = sorted(self.rng.uniform(0.0, FAULT_WINDOW_S) for _ in faults)
        self.stats.targets[target] += 1

        version, expect_good = self._apply_target(target)
        watcher = None
        if target == "crash-after-promotion":
            watcher = threading.Thread(target=self._crash_after_flip, daemon=True)
            watcher.start()
        t0 = time.monotonic()
        injected: list[str] = []
        pod_faults = False
        for moment, fault in zip(moments, faults, strict=True):
            time.sleep(max(0.0, t0 + moment - time.monotonic()))
            self._faults_now.append(fault.name)
            try:
                done = fault.inject(self)
            except ApiException as err:
                done = err.status != 404
            if done:
                self.stats.faults[fault.name] += 1
                injected.append(f"{fault.name}@{moment:.1f}s")
                pod_faults = pod_faults or fault.may_fail_pods
            else:
                self.stats.skipped[fault.name] += 1
        for thread in self.background:
            thread.join(timeout=10)
        if watcher is not None:
            watcher.join(timeout=40)
        if not self.world.mlflow.is_up():  # a fault must never outlive its iteration
            self.world.mlflow.start()
        pod_faults = pod_faults or self.replica_writes
        self.log(f"[chaos] iteration {self.iteration}: target={target} version={version} "
                 f"faults={injected or ['none']}")
        settled = self.settle(self.aliases[ALIAS])
        if settled:
            self._check(version, expect_good and not pod_faults)
        if self.world.standby is not None:
            for violation in double_actions(self, began):
                self.stats.violations.append((self.iteration, violation))
                self.log(f"[chaos] iteration {self.iteration} VIOLATION {violation}")
        self.stats.iterations += 1
        self.stats.seconds.append(time.monotonic() - started)

    def _apply_target(self, target: str) -> tuple[str, bool]:
        """Makes the change this iteration rolls out; returns the version and whether it is
        good (should end up serving when no fault hits its pods)."""
        clean = {"podLabels": None}
        if target in ("good-version", "crash-after-promotion", "smoke-fails"):
            version = self.add_version()
            if target == "smoke-fails":
                self.world.smoke.failing_versions.add(version)
                self.bad_versions.add(version)
            self.world.patch_spec({"renderer": clean})
            self.move_alias(version)
            return version, target == "good-version"
        if target == "template-change":
            status = self.world.status()
            self.world.patch_spec({"renderer": {**clean, "podAnnotations": {
                "chaos.tryon.dev/iteration": str(self.iteration)}}})
            # Good only on the version that serves: a rejected one stays rejected (by design).
            version = self.aliases[ALIAS]
            return version, status.get("activeVersion") == version
        kind = "crashloop" if target == "crashloop-template" else "never-ready"
        self.world.patch_spec({"renderer": {"podLabels": {FAULT: kind}}})
        if self.rng.random() < 0.5:
            version = self.add_version()
            self.move_alias(version)
            return version, False
        return self.aliases[ALIAS], False

    def _crash_after_flip(self) -> None:
        """Waits for the flip to the new colour, then crash-loops it inside the warm window."""
        before = self.world.selector_color()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            color = self.world.selector_color()
            if color in ("blue", "green") and color != before:
                # The Service moves a moment before status records PostPromotion.
                rollout = self.world.status().get("rollout") or {}
                if rollout.get("phase") == "PostPromotion" and rollout.get("color") == color:
                    injected = self.crash_pods(color)
                    if injected is not None:
                        self.measure_flip_back(color, injected)
                        return
                if not rollout:
                    self.log(f"[chaos] iteration {self.iteration}: warm window over before the "
                             "crash could be injected")
                    return
            time.sleep(0.05)
        self.log(f"[chaos] iteration {self.iteration}: no flip seen in time, crash not injected")

    # -------------------------------------------------------------- settle and check

    def settle(self, alias_version: str) -> bool:
        """Waits until the operator reports a finished state that stays put."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        last: tuple[Any, ...] | None = None
        since = time.monotonic()
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                tom = self.world.tom()
            except ApiException:
                time.sleep(0.25)
                continue
            status = tom.get("status") or {}
            done = (status.get("rollout") is None
                    and status.get("phase") in ("Healthy", "Degraded")
                    and status.get("observedGeneration") == tom["metadata"]["generation"]
                    and (status.get("model") or {}).get("version") == alias_version)
            key = (done, status.get("activeColor"), status.get("activeVersion"),
                   status.get("phase"), tuple(status.get("rejectedVersions") or ()),
                   self.world.selector_color())
            if key != last:
                last, since = key, time.monotonic()
            elif done and time.monotonic() - since >= STABLE_FOR_S:
                return True
            time.sleep(0.25)
        self.stats.violations.append((self.iteration, Violation(
            "settles", f"no stable finished state within {SETTLE_TIMEOUT_S:.0f}s: phase "
                       f"{status.get('phase')}, rollout {status.get('rollout')}, model "
                       f"{(status.get('model') or {}).get('version')} (alias {alias_version})")))
        return False

    def snapshot(self, target_version: str | None, expect_serving: bool) -> Snapshot:
        w = self.world
        ser = w.api.sanitize_for_serialization
        tom = w.tom()
        return Snapshot(
            tom=tom,
            deployments=[ser(d) for d in w.apps.list_namespaced_deployment(w.namespace).items],
            replicasets=[ser(r) for r in w.apps.list_namespaced_replica_set(w.namespace).items],
            pods=[ser(p) for p in w.core.list_namespaced_pod(w.namespace).items],
            services=[ser(s) for s in w.core.list_namespaced_service(w.namespace).items],
            hpas=[ser(h) for h in client.AutoscalingV2Api(w.api)
                  .list_namespaced_horizontal_pod_autoscaler(w.namespace).items],
            spec_template_hash=TryOnModelSpec.model_validate(tom["spec"]).renderer
            .template_hash(),
            registry=self.registry_snapshot(),
            expect=Expectations(
                aliases=dict(self.aliases), versions=frozenset(self.versions),
                version_fields=self.versions, bad_versions=frozenset(self.bad_versions),
                target_version=target_version, expect_serving=expect_serving),
        )

    def _check(self, version: str, expect_serving: bool) -> None:
        """Checks the invariants; a violation counts only if it persists through the grace."""
        snap = self.snapshot(version, expect_serving)
        if self.mlflow_was_down:
            self.stats.late_tags += len(missing_rejected_tags(snap))
        violations = first = check_all(snap)
        deadline = time.monotonic() + INVARIANT_GRACE_S
        while violations and time.monotonic() < deadline:
            time.sleep(0.5)
            snap = self.snapshot(version, expect_serving)
            violations = check_all(snap)
        if first and not violations:
            self.stats.transient += len(first)
            self.log(f"[chaos] iteration {self.iteration}: transient, cleared: "
                     f"{[str(v) for v in first]}")
        self.stats.outcomes[str(snap.status.get("phase"))] += 1
        for violation in violations:
            self.stats.violations.append((self.iteration, violation))
            self.log(f"[chaos] iteration {self.iteration} VIOLATION {violation}")
