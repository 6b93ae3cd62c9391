"""`tryon-model`: the model lifecycle CLI for ML engineers.

    tryon-model data make DIR [--count 300 --height 64 --width 48 --seed 0]
    tryon-model data validate DIR [--format auto|tryon|vitonhd] [--json]
    tryon-model train --data DIR --model NAME [--epochs 20 ...]
    tryon-model evaluate --data DIR --model NAME --version N [--against production]
    tryon-model promote --data DIR --model NAME --version N|latest [--force --reason TEXT]
    tryon-model rollback --model NAME [--to N] [--reason TEXT]
    tryon-model history --model NAME

Exit codes: 0 success, 1 failure (bad data, registry or model errors), 2 usage errors,
3 promotion refused by the policy. Errors are one line on stderr starting with ``error:``;
TRYON_DEBUG=1 adds the traceback. Registry commands need MLFLOW_TRACKING_URI (or
--tracking-uri); artifacts on S3 use the usual MLFLOW_S3_ENDPOINT_URL / AWS_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
DEFAULT_MODEL = "tryon-vton"


class CliError(Exception):
    """A user-facing failure with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers like 0.8,0.1,0.1: {text}"
        ) from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1: {text}")
    return parts[0], parts[1], parts[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tryon-model",
        description="Data, training, evaluation and promotion of try-on models in MLflow.",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="make or validate datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    make = data_sub.add_parser("make", help="generate a seeded synthetic try-on dataset")
    make.add_argument("out", type=Path, help="output directory")
    make.add_argument("--count", type=int, default=300, help="number of samples (300)")
    make.add_argument("--height", type=int, default=64)
    make.add_argument("--width", type=int, default=48)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--split", type=_fractions, default=(0.8, 0.1, 0.1), help="train,val,test")
    make.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    validate = data_sub.add_parser("validate", help="check a dataset; fails on bad data")
    validate.add_argument("path", type=Path)
    validate.add_argument("--format", default="auto", choices=["auto", "tryon", "vitonhd"])
    validate.add_argument("--json", action="store_true", help="machine-readable report")
    validate.add_argument("--max-issues", type=int, default=200)

    train = sub.add_parser("train", help="train the renderer's network and register a version")
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--format", default="auto", choices=["auto", "tryon", "vitonhd"])
    train.add_argument("--model", default=DEFAULT_MODEL, help=f"registered model ({DEFAULT_MODEL})")
    train.add_argument("--experiment", default="tryon-training")
    train.add_argument("--run-name")
    train.add_argument("--epochs", type=_positive_int, default=20)
    train.add_argument("--max-steps", type=_positive_int, default=None, help="cap on steps")
    train.add_argument("--batch-size", type=int, default=4, help="global batch (4)")
    train.add_argument("--lr", type=float, default=5e-3)
    train.add_argument("--arch", default="tryon-place-v1", help="network (tryon-place-v1)")
    train.add_argument("--no-mirror", action="store_true", help="no left-right mirroring")
    train.add_argument("--base-width", type=int, default=16, help="network width (16)")
    train.add_argument("--height", type=int, help="train resolution (default: the dataset's)")
    train.add_argument("--width", type=int)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    train.add_argument(
        "--corrupt-labels", action="store_true", help="shuffle targets (a deliberately bad model)"
    )
    train.add_argument("--no-register", action="store_true", help="log the run only")
    train.add_argument("--skip-validation", action="store_true")
    train.add_argument("--latency-budget-ms", type=float, default=5000.0)
    train.add_argument("--json", action="store_true", help="print the result as JSON")

    def registry_eval_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", type=Path, required=True, help="dataset with the held-out split")
        p.add_argument("--format", default="auto", choices=["auto", "tryon", "vitonhd"])
        p.add_argument("--split", default="test", choices=["val", "test"])
        p.add_argument("--model", default=DEFAULT_MODEL)
        p.add_argument("--device", default="auto")
        p.add_argument("--cache-dir", type=Path, help="reuse downloaded models (default: temp)")
        p.add_argument("--json", action="store_true")

    evaluate = sub.add_parser("evaluate", help="metrics of a version next to production")
    registry_eval_args(evaluate)
    evaluate.add_argument("--version", required=True, help="number, 'latest' or '@alias'")
    evaluate.add_argument(
        "--against", default="@production", help="compare with ('@production', N, or 'none')"
    )

    promote = sub.add_parser("promote", help="move the production alias if the candidate is better")
    registry_eval_args(promote)
    promote.add_argument("--version", required=True, help="number or 'latest'")
    promote.add_argument("--alias", default="production")
    promote.add_argument("--margin", type=float, default=0.02, help="required l1 gain (0.02)")
    promote.add_argument("--guard-tolerance", type=float, default=0.01)
    promote.add_argument("--force", action="store_true", help="override the gates (needs --reason)")
    promote.add_argument("--reason", help="why (recorded in the audit tags)")
    promote.add_argument("--dry-run", action="store_true", help="decide but change nothing")

    rollback = sub.add_parser("rollback", help="move the alias back to the previous production")
    rollback.add_argument("--model", default=DEFAULT_MODEL)
    rollback.add_argument("--alias", default="production")
    rollback.add_argument("--to", help="version to restore (default: the recorded parent)")
    rollback.add_argument("--reason")

    history = sub.add_parser("history", help="show the production alias history")
    history.add_argument("--model", default=DEFAULT_MODEL)
    history.add_argument("--json", action="store_true")
    return parser


def _v(version: object) -> str:
    return f"v{version}" if version else "none"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _registry(args: argparse.Namespace) -> Any:
    from .registry import Registry

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise CliError("no MLflow server: set MLFLOW_TRACKING_URI or pass --tracking-uri")
    return Registry(uri)


def _open(path: Path, fmt: str) -> Any:
    from .data import open_dataset

    return open_dataset(path, fmt)


def cmd_data_make(args: argparse.Namespace) -> int:
    from .data import make_synthetic

    try:
        ds = make_synthetic(
            args.out,
            args.count,
            height=args.height,
            width=args.width,
            seed=args.seed,
            fractions=args.split,
            overwrite=args.overwrite,
        )
    except ValueError as err:
        raise CliError(str(err), EXIT_USAGE) from err
    counts = ", ".join(f"{k} {v}" for k, v in ds.split_counts().items())
    _out(f"wrote {len(ds.samples)} samples ({counts}) at {args.height}x{args.width} to {ds.root}")
    return EXIT_OK


def cmd_data_validate(args: argparse.Namespace) -> int:
    from .validate import validate_dataset

    report = validate_dataset(_open(args.path, args.format))
    _out(report.to_json() if args.json else report.render(args.max_issues))
    return EXIT_OK if report.ok else EXIT_FAILED


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
    from . import distributed
    from .evaluate import pick_device
    from .train import TrainConfig, train_and_register
    from .validate import validate_dataset

    registry = _registry(args)
    # Every rank validates (cheap, and a bad dataset stops all of them before the process group).
    if not args.skip_validation:
        report = validate_dataset(_open(args.data, args.format))
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
            experiment=args.experiment,
            data_format=args.format,
            register=not args.no_register,
            latency_budget_ms=args.latency_budget_ms,
            run_name=args.run_name,
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
        _out(json.dumps(payload, sort_keys=True))
        return EXIT_OK
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    procs = f" on {result.world_size} processes" if result.world_size > 1 else ""
    _out(f"run {result.run_id}: {result.steps} steps in {result.seconds:.1f}s{procs}")
    _out(
        f"  {registry.tracking_uri.rstrip('/')}/#/experiments/{result.experiment_id}/runs/"
        f"{result.run_id}"
    )
    _out(f"val: {metrics}")
    for name, values in result.extra.get("baselines", {}).items():
        _out(f"baseline, {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    _out(
        f"model: {result.parameters} parameters, {result.size_bytes / 1024:.0f} KiB, "
        f"{result.latency_ms:.1f} ms per image on CPU (batch 1)"
    )
    if version:
        _out(f"registered {args.model} version {version}")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .baselines import baseline_metrics
    from .data import Batch
    from .evaluate import evaluate_version, format_table, load_version, pick_device
    from .lifecycle import resolve_version

    registry = _registry(args)
    ds = _open(args.data, args.format)
    device = pick_device(args.device)
    candidate = resolve_version(registry, args.model, args.version)
    batches: dict[tuple[Any, ...], Batch] = {}
    loaded = load_version(args.model, candidate.version, registry.tracking_uri, args.cache_dir)
    columns = {f"v{candidate.version}": evaluate_version(loaded, ds, args.split, device, batches)}
    baseline = None
    if args.against != "none":
        from .registry import RegistryError

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
        _out(json.dumps(payload, sort_keys=True))
    else:
        _out(f"{args.model} on {ds.root} [{args.split}, {len(ds.split(args.split))} samples]")
        _out(format_table(columns, baseline))
        _out("baselines (same samples):")
        _out(format_table(baselines))
        cand = columns[f"v{candidate.version}"]["masked_l1"]
        for name, values in baselines.items():
            gain = 1 - cand / values["masked_l1"] if values["masked_l1"] > 0 else float("nan")
            _out(f"masked_l1 of v{candidate.version} vs {name}: {gain:+.1%}")
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from .evaluate import pick_device
    from .lifecycle import promote
    from .policy import PromotionPolicy

    if args.force and not (args.reason and args.reason.strip()):
        raise CliError("--force needs --reason: say why the gates are overridden", EXIT_USAGE)
    try:
        policy = PromotionPolicy(margin=args.margin, guard_tolerance=args.guard_tolerance)
    except ValueError as err:
        raise CliError(str(err), EXIT_USAGE) from err
    registry = _registry(args)
    outcome = promote(
        registry,
        args.model,
        args.version,
        _open(args.data, args.format),
        split=args.split,
        policy=policy,
        force=args.force,
        reason=args.reason,
        alias=args.alias,
        device=pick_device(args.device),
        cache_dir=args.cache_dir,
        dry_run=args.dry_run,
    )
    d = outcome.decision
    if args.json:
        _out(
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
        _out(outcome.table)
    if not d.promote:
        raise CliError(f"promotion refused: {d.summary}", EXIT_REFUSED)
    if args.dry_run:
        _out(f"dry run: would move {args.alias} to v{outcome.candidate.version}: {d.summary}")
    elif not args.json:
        prev = outcome.production.version if outcome.production else None
        _out(f"{args.alias}: {_v(prev)} -> v{outcome.candidate.version} ({d.summary})")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from .lifecycle import rollback

    out = rollback(_registry(args), args.model, args.alias, args.to, args.reason)
    _out(f"{out.alias}: v{out.from_version} -> v{out.to_version} (rolled back)")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entries = registry.history(args.model)
    current = registry.alias_version(args.model)
    if args.json:
        _out(json.dumps({"production": current.version if current else None, "history": entries}))
        return EXIT_OK
    _out(f"{args.model}: production is v{current.version}" if current else "no production")
    for e in entries:
        _out(
            f"{e.get('at')}  {e.get('action'):<13} {_v(e.get('from'))} -> {_v(e.get('version'))}  "
            f"by {e.get('by')}: {e.get('reason')}"
        )
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "data":
        return cmd_data_make(args) if args.data_command == "make" else cmd_data_validate(args)
    handlers = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "promote": cmd_promote,
        "rollback": cmd_rollback,
        "history": cmd_history,
    }
    return handlers[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Fail in seconds, not minutes, when the tracking server is down (users can override).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    # Keep stdout for our own output (``--json`` must be parseable); we print the run URL.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from .data import DataError
    from .evaluate import EvaluationError
    from .registry import RegistryError
    from .train import TrainingError

    known = (DataError, RegistryError, EvaluationError, TrainingError)
    try:
        return _dispatch(args)
    except CliError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.code
    except known as err:
        if os.environ.get("TRYON_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: {err}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as err:
        if os.environ.get("TRYON_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"error: unexpected {type(err).__name__}: {err} (TRYON_DEBUG=1 shows the traceback)\n"
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
