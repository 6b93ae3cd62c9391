"""What every `tryon-model` command shares: exit codes, the user-facing error, output and the
registry and dataset openers."""

from __future__ import annotations

import argparse
import os
import sys
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


def version_label(version: object) -> str:
    return f"v{version}" if version else "none"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def registry_from(args: argparse.Namespace) -> Any:
    from ..registry import Registry

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise CliError("no MLflow server: set MLFLOW_TRACKING_URI or pass --tracking-uri")
    return Registry(uri)


def open_data(path: Path, fmt: str) -> Any:
    from ..data import open_dataset

    return open_dataset(path, fmt)
