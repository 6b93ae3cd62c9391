"""Lets a benchmark run by its path (``python bench/operator_bench.py``, as the Makefile and the
docs show) import ``bench`` and ``hack`` as packages: it starts itself again as
``python -m bench.<name>`` with the repository root on PYTHONPATH, whatever the working directory.

Standard library only: run by its path, a script finds this module (bench/ is on ``sys.path``)
before it can import anything from the repository. Each script begins with::

    if __name__ == "__main__" and not __package__:
        from _as_module import run_as_module

        run_as_module("bench.operator_bench")
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent


def run_as_module(module: str) -> NoReturn:
    """Replaces this process with ``python -m <module>`` and the same arguments."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    os.execv(sys.executable, [sys.executable, "-m", module, *sys.argv[1:]])
