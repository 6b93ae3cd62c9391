"""The `tryon-model` argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .common import DEFAULT_MODEL


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
    _add_data_commands(sub)
    _add_train_command(sub)
    _add_registry_commands(sub)
    return parser


if TYPE_CHECKING:
    # What `add_subparsers` returns; argparse names the class privately.
    _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_data_commands(sub: _Subparsers) -> None:
    """`data make` and `data validate`."""
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


def _add_train_command(sub: _Subparsers) -> None:
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


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    """The data and model flags `evaluate` and `promote` share."""
    p.add_argument("--data", type=Path, required=True, help="dataset with the held-out split")
    p.add_argument("--format", default="auto", choices=["auto", "tryon", "vitonhd"])
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", type=Path, help="reuse downloaded models (default: temp)")
    p.add_argument("--json", action="store_true")


def _add_registry_commands(sub: _Subparsers) -> None:
    """`evaluate`, `promote`, `rollback` and `history`."""
    evaluate = sub.add_parser("evaluate", help="metrics of a version next to production")
    _add_eval_args(evaluate)
    evaluate.add_argument("--version", required=True, help="number, 'latest' or '@alias'")
    evaluate.add_argument(
        "--against", default="@production", help="compare with ('@production', N, or 'none')"
    )

    promote = sub.add_parser("promote", help="move the production alias if the candidate is better")
    _add_eval_args(promote)
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
