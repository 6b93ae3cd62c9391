"""Invariants a settled TryOnModel must satisfy, as pure functions over a snapshot.

The snapshot is plain JSON (what the API server and MLflow returned), so every check can be fed a
broken snapshot in a unit test: no invariant here is one that cannot fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

COLOR = "tryon.dev/color"
VERSION = "tryon.dev/model-version"
TEMPLATE_HASH = "tryon.dev/template-hash"
FAULT = "sim.tryon.dev/fault"
OPERATOR_TAG_PREFIX = "tryon.dev/"
COLORS = ("blue", "green")


@dataclass(frozen=True)
class RegistrySnapshot:
    """One registered model as MLflow reports it."""

    aliases: dict[str, str]
    description: str | None
    model_tags: dict[str, str]
    # version -> {"source", "run_id", "description", "status", "tags": {...}}
    versions: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Expectations:
    """What the test itself did, so the checks can tell the operator's writes from its own."""

    aliases: dict[str, str]
    versions: frozenset[str]
    version_fields: dict[str, dict[str, Any]]  # fields and tags the test wrote per version
    bad_versions: frozenset[str] = frozenset()  # fail their smoke test: must never serve
    target_version: str | None = None
    expect_serving: bool = False  # a good target and no fault that could fail its pods


@dataclass(frozen=True)
class Snapshot:
    """The TryOnModel, every object in its namespace and the registry, taken at one moment."""

    tom: dict[str, Any]
    deployments: list[dict[str, Any]]
    replicasets: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    services: list[dict[str, Any]]
    hpas: list[dict[str, Any]]
    spec_template_hash: str
    registry: RegistrySnapshot
    expect: Expectations
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.tom["metadata"]["name"])

    @property
    def status(self) -> dict[str, Any]:
        return self.tom.get("status") or {}

    def deployment(self, color: str | None) -> dict[str, Any] | None:
        return _named(self.deployments, f"{self.name}-{color}") if color else None

    def service(self, name: str) -> dict[str, Any] | None:
        return _named(self.services, name)

    def live_pods(self, color: str) -> list[dict[str, Any]]:
        return [p for p in self.pods if _labels(p).get(COLOR) == color
                and _labels(p).get("app.kubernetes.io/instance") == self.name
                and not p["metadata"].get("deletionTimestamp")]


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.message}"


Check = Callable[[Snapshot], Iterable[Violation]]


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((i for i in items if i["metadata"]["name"] == name), None)


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def _ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), {})


def _selector_color(snap: Snapshot) -> str | None:
    svc = snap.service(snap.name)
    return None if svc is None else (svc["spec"].get("selector") or {}).get(COLOR)


# ----------------------------------------------------------------- traffic


def service_selects_one_ready_colour(snap: Snapshot) -> Iterable[Violation]:
    """The active Service selects exactly one colour, and that colour's pods are all Ready.

    A colour with no pods at all is exempt only when no other colour has a Ready pod either
    (nothing healthy to send traffic to).
    """
    name = "service-selects-one-ready-colour"
    svc = snap.service(snap.name)
    if svc is None:
        yield Violation(name, f"Service {snap.name} does not exist")
        return
    selector = svc["spec"].get("selector") or {}
    color = selector.get(COLOR)
    wanted = {"app.kubernetes.io/name": "tryon-renderer",
              "app.kubernetes.io/instance": snap.name, COLOR: color}
    if color not in COLORS or selector != wanted:
        yield Violation(name, f"selector {selector} does not pick exactly one colour")
        return
    pods = snap.live_pods(color)
    ready = [p for p in pods if _ready(p)]
    if pods and len(ready) < len(pods):
        yield Violation(name, f"{color} serves with {len(ready)}/{len(pods)} pods Ready")
    elif not pods and any(_ready(p) for p in snap.live_pods(_other(color))):
        yield Violation(name, f"{color} serves with no pods while {_other(color)} has Ready ones")


def _other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def status_matches_service(snap: Snapshot) -> Iterable[Violation]:
    color = _selector_color(snap)
    if snap.status.get("activeColor") != color:
        yield Violation("status-matches-service",
                        f"status.activeColor={snap.status.get('activeColor')} but the Service "
                        f"selects {color}")


def active_deployment_runs_active_version(snap: Snapshot) -> Iterable[Violation]:
    name = "active-version-labels"
    status = snap.status
    dep = snap.deployment(status.get("activeColor"))
    if dep is None:
        yield Violation(name, f"no Deployment for active colour {status.get('activeColor')}")
        return
    version = status.get("activeVersion")
    if _labels(dep).get(VERSION) != version:
        yield Violation(name, f"Deployment {dep['metadata']['name']} is labelled version "
                              f"{_labels(dep).get(VERSION)}, status.activeVersion={version}")
    template_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    if template_labels.get(VERSION) != version:
        yield Violation(name, f"pod template of {dep['metadata']['name']} has version "
                              f"{template_labels.get(VERSION)}, expected {version}")
    hash_ = (dep["metadata"].get("annotations") or {}).get(TEMPLATE_HASH)
    if hash_ != status.get("activeTemplateHash"):
        yield Violation(name, f"Deployment template hash {hash_} != status.activeTemplateHash "
                              f"{status.get('activeTemplateHash')}")
    stale = [p["metadata"]["name"] for p in snap.live_pods(status["activeColor"])
             if _labels(p).get(VERSION) != version]
    if stale:
        yield Violation(name, f"active pods of another version: {stale}")


# ----------------------------------------------------------------- rejected versions


def nothing_rejected_serves(snap: Snapshot) -> Iterable[Violation]:
    name = "no-rejected-version-serves"
    status = snap.status
    version = status.get("activeVersion")
    if version in (status.get("rejectedVersions") or []):
        yield Violation(name, f"version {version} is in rejectedVersions and serves")
    if version in snap.expect.bad_versions:
        yield Violation(name, f"version {version} fails its smoke test and serves")
    dep = snap.deployment(status.get("activeColor"))
    if dep is None:
        return
    hash_ = (dep["metadata"].get("annotations") or {}).get(TEMPLATE_HASH)
    if hash_ is not None and hash_ == status.get("rejectedTemplateHash"):
        yield Violation(name, f"rejected pod template {hash_} serves")
    template_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    if FAULT in template_labels:
        yield Violation(name, f"a failing pod template ({FAULT}={template_labels[FAULT]}) serves")


# ----------------------------------------------------------------- children


def idle_colour_is_scaled_down(snap: Snapshot) -> Iterable[Violation]:
    name = "idle-colour-scaled-to-0"
    if snap.status.get("rollout") is not None:
        return
    active = snap.status.get("activeColor")
    for color in COLORS:
        if color == active:
            continue
        dep = snap.deployment(color)
        if dep is not None and dep["spec"].get("replicas"):
            yield Violation(name, f"{dep['metadata']['name']} has {dep['spec']['replicas']} "
                                  "replicas with no rollout in flight")
        pods = snap.live_pods(color)
        if pods:
            yield Violation(name, f"{len(pods)} pod(s) of idle colour {color} still exist")


def children_are_owned(snap: Snapshot) -> Iterable[Violation]:
    """Every child carries a controller reference to the TryOnModel; nothing is orphaned."""
    name = "no-orphans"
    uid = snap.tom["metadata"]["uid"]
    allowed = {
        "Deployment": {f"{snap.name}-{c}" for c in COLORS},
        "Service": {snap.name, f"{snap.name}-preview"},
        "HorizontalPodAutoscaler": {snap.name},
    }
    for kind, items in (("Deployment", snap.deployments), ("Service", snap.services),
                        ("HorizontalPodAutoscaler", snap.hpas)):
        for obj in items:
            obj_name = obj["metadata"]["name"]
            if obj_name not in allowed[kind]:
                yield Violation(name, f"unexpected {kind} {obj_name}")
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == uid and r.get("controller") for r in refs):
                yield Violation(name, f"{kind} {obj_name} has no controller reference to "
                                      f"TryOnModel {snap.name}")
    for svc in (snap.name, f"{snap.name}-preview"):
        if snap.service(svc) is None:
            yield Violation(name, f"Service {svc} is missing")
    dep_uids = {d["metadata"]["uid"] for d in snap.deployments}
    rs_uids = set()
    for rs in snap.replicasets:
        rs_uids.add(rs["metadata"]["uid"])
        refs = rs["metadata"].get("ownerReferences") or []
        if not any(r.get("uid") in dep_uids for r in refs):
            yield Violation(name, f"ReplicaSet {rs['metadata']['name']} has no live Deployment")
    for pod in snap.pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        refs = pod["metadata"].get("ownerReferences") or []
        if not any(r.get("uid") in rs_uids for r in refs):
            yield Violation(name, f"pod {pod['metadata']['name']} has no live ReplicaSet")


# ----------------------------------------------------------------- status


def status_matches_cluster(snap: Snapshot) -> Iterable[Violation]:
    name = "status-matches-cluster"
    status, meta = snap.status, snap.tom["metadata"]
    if status.get("observedGeneration") != meta.get("generation"):
        yield Violation(name, f"observedGeneration {status.get('observedGeneration')} != "
                              f"generation {meta.get('generation')}")
    if status.get("rollout") is None and (status.get("previewColor") or
                                          status.get("previewVersion")):
        yield Violation(name, "preview fields set with no rollout in flight")
    color = status.get("activeColor")
    pods = snap.live_pods(color) if color else []
    dep = snap.deployment(color)
    actually_ready = bool(dep and dep["spec"].get("replicas") and pods
                          and len(pods) >= dep["spec"]["replicas"] and all(map(_ready, pods)))
    ready = _condition(status, "Ready").get("status") == "True"
    if ready != actually_ready:
        yield Violation(name, f"Ready condition is {ready} but the active colour's pods say "
                              f"{actually_ready}")
    degraded = _condition(status, "Degraded").get("status") == "True"
    phase = status.get("phase")
    if phase == "Healthy" and (degraded or not ready):
        yield Violation(name, f"phase Healthy with Ready={ready}, Degraded={degraded}")
    if phase == "Degraded" and not degraded:
        yield Violation(name, "phase Degraded without a Degraded=True condition")
    alias_version = snap.registry.aliases.get(_alias(snap))
    model_version = (status.get("model") or {}).get("version")
    if model_version != alias_version:
        yield Violation(name, f"status.model.version={model_version} but the registry alias "
                              f"points at {alias_version}")


def _alias(snap: Snapshot) -> str:
    return str(((snap.tom.get("spec") or {}).get("model") or {}).get("alias") or "production")


def outcome_is_served_or_rejected(snap: Snapshot) -> Iterable[Violation]:
    """What the registry and spec ask for either serves (Healthy) or is rejected (Degraded)."""
    name = "outcome"
    status = snap.status
    wanted = (status.get("model") or {}).get("version")
    serving = (status.get("activeVersion") == wanted
               and status.get("activeTemplateHash") == snap.spec_template_hash)
    rejected = (wanted in (status.get("rejectedVersions") or []) and not serving) or (
        status.get("activeVersion") == wanted
        and status.get("rejectedTemplateHash") == snap.spec_template_hash)
    if serving and status.get("phase") != "Healthy":
        yield Violation(name, f"version {wanted} serves but phase is {status.get('phase')}")
    elif rejected and status.get("phase") != "Degraded":
        yield Violation(name, f"version {wanted} (template {snap.spec_template_hash}) is rejected "
                              f"but phase is {status.get('phase')}")
    elif not serving and not rejected:
        yield Violation(name, f"version {wanted} (template {snap.spec_template_hash}) neither "
                              f"serves nor is rejected; active {status.get('activeVersion')}")
    target = snap.expect.target_version
    if snap.expect.expect_serving and target is not None and not serving:
        yield Violation(name, f"good version {target} with no pod fault does not serve "
                              f"(active {status.get('activeVersion')}, phase {status.get('phase')},"
                              f" degraded {_condition(status, 'Degraded').get('reason')})")


# ----------------------------------------------------------------- registry


def registry_changes_only_operator_tags(snap: Snapshot) -> Iterable[Violation]:
    """MLflow holds what the test wrote; the operator may only add or rewrite tryon.dev/* tags."""
    name = "registry-unchanged"
    reg, expect = snap.registry, snap.expect
    if reg.aliases != expect.aliases:
        yield Violation(name, f"aliases {reg.aliases} != what the test set {expect.aliases}")
    if set(reg.versions) != set(expect.versions):
        yield Violation(name, f"versions {sorted(reg.versions)} != {sorted(expect.versions)}")
    if reg.model_tags or reg.description:
        yield Violation(name, f"registered model changed: tags {reg.model_tags}, "
                              f"description {reg.description!r}")
    for version, wrote in expect.version_fields.items():
        got = reg.versions.get(version)
        if got is None:
            continue
        for key, value in wrote.items():
            if key != "tags" and got.get(key) != value:
                yield Violation(name, f"version {version} {key} is {got.get(key)!r}, "
                                      f"was {value!r}")
        test_tags = wrote.get("tags") or {}
        for key, value in test_tags.items():
            if got["tags"].get(key) != value:
                yield Violation(name, f"version {version} tag {key} changed to "
                                      f"{got['tags'].get(key)!r}")
        for key in got["tags"]:
            if key not in test_tags and not key.startswith(OPERATOR_TAG_PREFIX):
                yield Violation(name, f"version {version} got a foreign tag {key}")
    for version in missing_rejected_tags(snap):
        # A tag decided during an MLflow outage is owed in status and sent when MLflow answers,
        # so this holds once the grace period has passed.
        yield Violation(name, f"rejected version {version} has no tryon.dev/rejected tag")


def missing_rejected_tags(snap: Snapshot) -> list[str]:
    """Versions in status.rejectedVersions whose MLflow tag tryon.dev/rejected is absent."""
    def tags(version: str) -> dict[str, str]:
        return dict((snap.registry.versions.get(version) or {}).get("tags") or {})

    return [v for v in snap.status.get("rejectedVersions") or []
            if "tryon.dev/rejected" not in tags(v)]


ALL_CHECKS: tuple[Check, ...] = (
    service_selects_one_ready_colour,
    status_matches_service,
    active_deployment_runs_active_version,
    nothing_rejected_serves,
    idle_colour_is_scaled_down,
    children_are_owned,
    status_matches_cluster,
    outcome_is_served_or_rejected,
    registry_changes_only_operator_tags,
)


def check_all(snap: Snapshot, checks: Iterable[Check] = ALL_CHECKS) -> list[Violation]:
    return [v for check in checks for v in check(snap)]
