"""`tryon-model` entry point: parse, dispatch, and turn failures into one `error:` line and an
exit code."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from .common import EXIT_FAILED, CliError
from .data_commands import cmd_data_make, cmd_data_validate, cmd_history, cmd_rollback
from .parser import build_parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "data":
        return cmd_data_make(args) if args.data_command == "make" else cmd_data_validate(args)
    from .model_commands import cmd_evaluate, cmd_promote, cmd_train

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

    from ..data import DataError
    from ..evaluate import EvaluationError
    from ..registry import RegistryError
    from ..train import TrainingError

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
