"""`tryon-model data make`, `data validate`, `rollback` and `history`: the commands that run no
model."""

from __future__ import annotations

import argparse
import json

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    open_data,
    registry_from,
    say,
    version_label,
)


def cmd_data_make(args: argparse.Namespace) -> int:
    from ..data import SyntheticSpec, make_synthetic

    spec = SyntheticSpec(
        args.count, height=args.height, width=args.width, seed=args.seed, fractions=args.split
    )
    try:
        ds = make_synthetic(args.out, spec, overwrite=args.overwrite)
    except ValueError as err:
        raise CliError(str(err), EXIT_USAGE) from err
    counts = ", ".join(f"{k} {v}" for k, v in ds.split_counts().items())
    say(f"wrote {len(ds.samples)} samples ({counts}) at {args.height}x{args.width} to {ds.root}")
    return EXIT_OK


def cmd_data_validate(args: argparse.Namespace) -> int:
    from ..validate import validate_dataset

    report = validate_dataset(open_data(args.path, args.format))
    say(report.to_json() if args.json else report.render(args.max_issues))
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..lifecycle import rollback

    out = rollback(registry_from(args), args.model, args.alias, args.to, args.reason)
    say(f"{out.alias}: v{out.from_version} -> v{out.to_version} (rolled back)")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    registry = registry_from(args)
    entries = registry.history(args.model)
    current = registry.alias_version(args.model)
    if args.json:
        say(json.dumps({"production": current.version if current else None, "history": entries}))
        return EXIT_OK
    say(f"{args.model}: production is v{current.version}" if current else "no production")
    for e in entries:
        say(
            f"{e.get('at')}  {e.get('action'):<13} {version_label(e.get('from'))} -> "
            f"{version_label(e.get('version'))}  by {e.get('by')}: {e.get('reason')}"
        )
    return EXIT_OK
