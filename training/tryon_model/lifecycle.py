"""Promotion and rollback of the `production` alias, with audit tags and history.

The decision itself is `policy.decide` (pure); this module gathers its inputs (evaluating the
candidate and the current production version on the same held-out split) and applies the result
to the registry. The alias is re-read right before it is moved: if someone else moved it while
we were evaluating, nothing is changed and the command fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .data import Batch, Dataset, dataset_hash
from .evaluate import evaluate_version, format_table, load_version
from .policy import Decision, PromotionPolicy, Scored, decide
from .registry import (
    PRODUCTION_ALIAS,
    TAG_PREFIX,
    Registry,
    RegistryError,
    VersionInfo,
    actor,
    now_iso,
)


@dataclass
class PromotionOutcome:
    decision: Decision
    candidate: VersionInfo
    production: VersionInfo | None
    candidate_metrics: dict[str, float]
    production_metrics: dict[str, float] | None
    table: str
    dataset_hash: str
    applied: bool


def resolve_version(registry: Registry, name: str, version: str) -> VersionInfo:
    """A version number, 'latest', or an alias name prefixed with '@'."""
    if version == "latest":
        latest = registry.latest_version(name)
        if latest is None:
            raise RegistryError(f"model {name!r} has no versions")
        return latest
    if version.startswith("@"):
        found = registry.alias_version(name, version[1:])
        if found is None:
            raise RegistryError(f"model {name!r} has no alias {version[1:]!r}")
        return found
    if not version.isdigit():
        raise RegistryError(f"version must be a number, 'latest' or '@alias', got {version!r}")
    return registry.version(name, version)


@dataclass(frozen=True)
class EvalSettings:
    """Where candidate and production are evaluated: the same split, device and model cache."""

    split: str = "test"
    device: torch.device | None = None
    cache_dir: Path | None = None


@dataclass(frozen=True)
class PromoteOptions:
    """How the decision is taken and applied (the `promote` flags beyond the data)."""

    policy: PromotionPolicy | None = None
    force: bool = False
    reason: str | None = None
    alias: str = PRODUCTION_ALIAS
    dry_run: bool = False


def promote(
    registry: Registry,
    name: str,
    version: str,
    ds: Dataset,
    opts: PromoteOptions = PromoteOptions(),
    settings: EvalSettings = EvalSettings(),
) -> PromotionOutcome:
    """Evaluate candidate and production, decide, and (unless refused or dry-run) move the alias."""
    candidate = resolve_version(registry, name, version)
    production = registry.alias_version(name, opts.alias)
    data_hash = dataset_hash(ds)
    cand_metrics, prod_metrics, table = _evaluate_both(
        registry, name, (candidate, production), ds, settings
    )
    # Same version on both sides: it is compared with itself (and refused as already production).
    prod_scored = (
        Scored(production.version, prod_metrics if prod_metrics is not None else cand_metrics)
        if production is not None
        else None
    )
    decision = decide(
        Scored(candidate.version, cand_metrics),
        prod_scored,
        opts.policy or PromotionPolicy(),
        force=opts.force,
        reason=opts.reason,
    )
    outcome = PromotionOutcome(
        decision, candidate, production, cand_metrics, prod_metrics, table, data_hash, False
    )
    if opts.dry_run:
        return outcome
    metrics_json = json.dumps(
        {"split": settings.split, "candidate": cand_metrics, "production": prod_metrics},
        sort_keys=True,
    )
    if not decision.promote:
        if production is not None and production.version == candidate.version:
            return outcome  # nothing was refused: it already serves
        _record_refusal(registry, name, candidate, decision, metrics_json)
        return outcome
    _apply_promotion(registry, name, outcome, opts, metrics_json, ds)
    outcome.applied = True
    return outcome


def _evaluate_both(
    registry: Registry,
    name: str,
    versions: tuple[VersionInfo, VersionInfo | None],
    ds: Dataset,
    settings: EvalSettings,
) -> tuple[dict[str, float], dict[str, float] | None, str]:
    """Candidate and (if it is another version) production metrics on the same batches + table."""
    candidate, production = versions
    device = settings.device or torch.device("cpu")
    batches: dict[tuple[Any, ...], Batch] = {}

    def metrics_of(v: VersionInfo) -> dict[str, float]:
        loaded = load_version(name, v.version, registry.tracking_uri, settings.cache_dir)
        return evaluate_version(loaded, ds, settings.split, device, batches)

    cand_metrics = metrics_of(candidate)
    prod_metrics: dict[str, float] | None = None
    columns = {f"candidate v{candidate.version}": cand_metrics}
    baseline: str | None = None
    if production is not None and production.version != candidate.version:
        prod_metrics = metrics_of(production)
        baseline = f"production v{production.version}"
        columns = {baseline: prod_metrics, **columns}
    return cand_metrics, prod_metrics, format_table(columns, baseline)


def _record_refusal(
    registry: Registry, name: str, candidate: VersionInfo, decision: Decision, metrics_json: str
) -> None:
    """Tag the refused candidate so the registry shows who tried, when, and why it failed."""
    registry.set_version_tags(
        name,
        candidate.version,
        {
            TAG_PREFIX + "refused_at": now_iso(),
            TAG_PREFIX + "refused_by": actor(),
            TAG_PREFIX + "refusal": decision.summary,
            TAG_PREFIX + "refusal_metrics": metrics_json,
        },
    )


def _apply_promotion(
    registry: Registry,
    name: str,
    outcome: PromotionOutcome,
    opts: PromoteOptions,
    metrics_json: str,
    ds: Dataset,
) -> None:
    """Move the alias (if it has not moved since we evaluated), with audit tags and history."""
    who, when = actor(), now_iso()
    alias, candidate, decision = opts.alias, outcome.candidate, outcome.decision
    reason = opts.reason or "passed the promotion gates"
    # Re-check: the alias must still point where it did when we evaluated.
    now_prod = registry.alias_version(name, alias)
    before = outcome.production.version if outcome.production else None
    after = now_prod.version if now_prod else None
    if before != after:
        raise RegistryError(
            f"alias {alias!r} moved from {before} to {after} during evaluation; nothing changed, "
            "run promote again"
        )
    registry.set_version_tags(
        name,
        candidate.version,
        {
            TAG_PREFIX + "promoted_at": when,
            TAG_PREFIX + "promoted_by": who,
            TAG_PREFIX + "promotion_reason": reason,
            TAG_PREFIX + "promotion_forced": "true" if decision.forced else "false",
            TAG_PREFIX + "promotion_decision": decision.summary,
            TAG_PREFIX + "promotion_metrics": metrics_json,
            TAG_PREFIX + "parent_version": before or "none",
            TAG_PREFIX + "eval_dataset_hash": outcome.dataset_hash,
            TAG_PREFIX + "eval_dataset_path": str(ds.root),
            TAG_PREFIX + "promoted_alias": alias,
        },
    )
    registry.set_alias(name, alias, candidate.version)
    registry.append_history(
        name,
        {
            "action": "force-promote" if decision.forced else "promote",
            "alias": alias,
            "version": candidate.version,
            "from": before,
            "at": when,
            "by": who,
            "reason": reason,
        },
    )


@dataclass
class RollbackOutcome:
    alias: str
    from_version: str
    to_version: str


def rollback(
    registry: Registry,
    name: str,
    alias: str = PRODUCTION_ALIAS,
    to: str | None = None,
    reason: str | None = None,
) -> RollbackOutcome:
    """Move `alias` back to the version it pointed to before (or to `to`)."""
    current = registry.alias_version(name, alias)
    if current is None:
        raise RegistryError(f"model {name!r} has no {alias!r} alias: nothing to roll back")
    target_version = to or current.parent_version
    if target_version is None:
        raise RegistryError(
            f"version {current.version} (the current {alias}) records no previous production "
            f"version; name one with --to <version>"
        )
    if target_version == current.version:
        raise RegistryError(f"version {current.version} is already {alias}")
    target = registry.version(name, target_version)  # must exist
    who, when = actor(), now_iso()
    why = reason or "manual rollback"
    registry.set_version_tags(
        name,
        current.version,
        {
            TAG_PREFIX + "rolled_back_at": when,
            TAG_PREFIX + "rolled_back_by": who,
            TAG_PREFIX + "rolled_back_to": target.version,
            TAG_PREFIX + "rollback_reason": why,
        },
    )
    registry.set_version_tags(
        name,
        target.version,
        {
            TAG_PREFIX + "restored_at": when,
            TAG_PREFIX + "restored_by": who,
            TAG_PREFIX + "restored_from": current.version,
        },
    )
    registry.set_alias(name, alias, target.version)
    registry.append_history(
        name,
        {
            "action": "rollback",
            "alias": alias,
            "version": target.version,
            "from": current.version,
            "at": when,
            "by": who,
            "reason": why,
        },
    )
    return RollbackOutcome(alias, current.version, target.version)
