"""Preflight for `make demo` and `make test`: in seconds, what a build would trip over in minutes.

One line per check, `ok` / `warn` / `FAIL`; every warn and FAIL says the fix in words. The exit
status is 1 only when a check FAILs. Standard library only, so it runs before `.venv` exists.

Design: the probes (subprocesses with short timeouts, files under /proc and /sys, the disks) are
gathered once, in parallel, into a `Probes` value; each check is a pure function from that value to
a `Verdict`, so tests/unit/test_doctor.py fakes the probes and checks every verdict.

Layout: `probes.py` (the only code that touches the machine) -> `checks.py` (settings, the probe
results as data, the checks) -> `__main__.py` (one line per verdict). This package re-exports both.

Usage: python3 -m hack.doctor from the repository root, or `make doctor` (`make demo`, `make test`
and .ci/run run it first).
"""

# The doctor's whole surface in one namespace, as when it was one file (tests/unit/test_doctor.py).
from .checks import *  # noqa: F403
from .probes import *  # noqa: F403
