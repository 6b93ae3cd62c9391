"""`tryon-model train`, `evaluate` and `promote`: the commands that run models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .common import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    open_data,
    registry_from,
    say,
    version_label,
)


def torch_threads_for_training() -> int:
    """Default CPU threads per training process: half a core's share, at least one.

    Measured on the 2-core development VM: with other work on the machine, 2 intra-op threads
    per step were 5x slower than 1 (threads spin at every barrier waiting for a descheduled
    peer), and two torchrun workers share the cores. `--threads` overrides this.
    """
    import torch

    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = max(1, (os.cpu_count() or 1) // (2 * local_world))
    torch.set_num_threads(threads)
    return threads


def cmd_train(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..evaluate import pick_device
    from ..train import TrainConfig, TrainOptions, train_and_register
    from ..validate import validate_dataset

    registry = registry_from(args)
    # Every rank validates (cheap, and a bad dataset stops all of them before the process group).
    if not args.skip_validation:
        report = validate_dataset(open_data(args.data, args.format))
        if not report.ok:
            sys.stderr.write(report.render(20) + "\n")
            raise CliError(f"{args.data} failed validation; fix it or pass --skip-validation")
    cfg = TrainConfig(
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        base_width=args.base_width,
        height=args.height,
        width=args.width,
        seed=args.seed,
        device=args.device,
        corrupt_labels=args.corrupt_labels,
        arch=args.arch,
        mirror=not args.no_mirror,
    )
    device = pick_device(args.device)
    if args.threads is None and device.type == "cpu":
        torch_threads_for_training()
    ctx = distributed.from_env(device)
    try:
        result = train_and_register(
            args.data,
            cfg,
            args.model,
            registry,
            TrainOptions(
                experiment=args.experiment,
                data_format=args.format,
                register=not args.no_register,
                latency_budget_ms=args.latency_budget_ms,
                run_name=args.run_name,
            ),
            ctx=ctx,
        )
    finally:
        distributed.shutdown(ctx)
    if not ctx.is_main:
        return EXIT_OK  # rank 0 reports for the whole job
    version = result.version.version if result.version else None
    payload = {
        "run_id": result.run_id,
        "model": args.model,
        "version": version,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 2),
        "val_metrics": result.metrics,
        "identity_baseline": result.baseline,
        "baselines": result.extra.get("baselines", {}),
        "world_size": result.world_size,
        "parameters": result.parameters,
        "size_bytes": result.size_bytes,
        "latency_ms_cpu_b1": round(result.latency_ms, 3),
        "dataset_hash": result.dataset_hash,
    }
    if args.json:
        say(json.dumps(payload, sort_keys=True))
        return EXIT_OK
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    procs = f" on {result.world_size} processes" if result.world_size > 1 else ""
    say(f"run {result.run_id}: {result.steps} steps in {result.seconds:.1f}s{procs}")
    say(
        f"  {registry.tracking_uri.rstrip('/')}/#/experiments/{result.experiment_id}/runs/"
        f"{result.run_id}"
    )
    say(f"val: {metrics}")
    for name, values in result.extra.get("baselines", {}).items():
        say(f"baseline, {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    say(
        f"model: {result.parameters} parameters, {result.size_bytes / 1024:.0f} KiB, "
        f"{result.latency_ms:.1f} ms per image on CPU (batch 1)"
    )
    if version:
        say(f"registered {args.model} version {version}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..baselines import baseline_metrics
    from ..data import Batch
    from ..evaluate import evaluate_version, format_table, load_version, pick_device
    from ..lifecycle import resolve_version

    registry = registry_from(args)
    ds = open_data(args.data, args.format)
    device = pick_device(args.device)
    candidate = resolve_version(registry, args.model, args.version)
    batches: dict[tuple[Any, ...], Batch] = {}
    loaded = load_version(args.model, candidate.version, registry.tracking_uri, args.cache_dir)
    columns = {f"v{candidate.version}": evaluate_version(loaded, ds, args.split, device, batches)}
    baseline = None
    if args.against != "none":
        from ..registry import RegistryError

        try:
            other = resolve_version(registry, args.model, args.against)
        except RegistryError as err:
            if not args.against.startswith("@"):
                raise
            sys.stderr.write(f"note: no {args.against} to compare with ({err})\n")
            other = None
        if other is not None and other.version != candidate.version:
            other_loaded = load_version(
                args.model, other.version, registry.tracking_uri, args.cache_dir
            )
            baseline = f"v{other.version} ({args.against.lstrip('@')})"
            columns = {
                baseline: evaluate_version(other_loaded, ds, args.split, device, batches),
                **columns,
            }
    # Baselines at the candidate's resolution, on the same samples.
    key = (loaded.height, loaded.width, loaded.categories)
    baselines = baseline_metrics(batches[key])
    if args.json:
        payload = {"split": args.split, "metrics": columns, "baselines": baselines}
        say(json.dumps(payload, sort_keys=True))
    else:
        say(f"{args.model} on {ds.root} [{args.split}, {len(ds.split(args.split))} samples]")
        say(format_table(columns, baseline))
        say("baselines (same samples):")
        say(format_table(baselines))
        cand = columns[f"v{candidate.version}"]["masked_l1"]
        for name, values in baselines.items():
            gain = 1 - cand / values["masked_l1"] if values["masked_l1"] > 0 else float("nan")
            say(f"masked_l1 of v{candidate.version} vs {name}: {gain:+.1%}")
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from ..evaluate import pick_device
    from ..lifecycle import EvalSettings, PromoteOptions, promote
    from ..policy import PromotionPolicy

    if args.force and not (args.reason and args.reason.strip()):
        raise CliError("--force needs --reason: say why the gates are overridden", EXIT_USAGE)
    try:
        policy = PromotionPolicy(margin=args.margin, guard_tolerance=args.guard_tolerance)
    except ValueError as err:
        raise CliError(str(err), EXIT_USAGE) from err
    registry = registry_from(args)
    outcome = promote(
        registry,
        args.model,
        args.version,
        open_data(args.data, args.format),
        PromoteOptions(
            policy=policy,
            force=args.force,
            reason=args.reason,
            alias=args.alias,
            dry_run=args.dry_run,
        ),
        EvalSettings(split=args.split, device=pick_device(args.device), cache_dir=args.cache_dir),
    )
    d = outcome.decision
    if args.json:
        say(
            json.dumps(
                {
                    "promote": d.promote,
                    "applied": outcome.applied,
                    "forced": d.forced,
                    "summary": d.summary,
                    "candidate": outcome.candidate.version,
                    "production": outcome.production.version if outcome.production else None,
                    "candidate_metrics": outcome.candidate_metrics,
                    "production_metrics": outcome.production_metrics,
                },
                sort_keys=True,
            )
        )
    else:
        say(outcome.table)
    if not d.promote:
        raise CliError(f"promotion refused: {d.summary}", EXIT_REFUSED)
    if args.dry_run:
        say(f"dry run: would move {args.alias} to v{outcome.candidate.version}: {d.summary}")
    elif not args.json:
        prev = outcome.production.version if outcome.production else None
        say(f"{args.alias}: {version_label(prev)} -> v{outcome.candidate.version} ({d.summary})")
    return EXIT_OK
