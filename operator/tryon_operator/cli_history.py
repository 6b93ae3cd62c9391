"""``python -m tryon_operator.cli_history NAME -n NAMESPACE``: kept for scripts written before
``tryonctl history`` (same arguments, same output); the view lives in ``ctl/history.py``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .ctl.history import Served, render, served_windows

__all__ = ["Served", "main", "render", "served_windows"]


def main(argv: Sequence[str] | None = None) -> int:
    from .ctl.cli import main as ctl_main

    return ctl_main(["history", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
