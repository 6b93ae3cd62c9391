"""python3 -m hack.doctor (make doctor): gather the probes, check them, print one line each."""

from __future__ import annotations

import sys
import time

from .checks import check_all, exit_code
from .probes import gather


def main() -> int:
    started = time.monotonic()
    print("doctor: checking this machine before anything is built (hack/doctor)", flush=True)
    verdicts = check_all(gather())
    for v in verdicts:
        print(v.line())
    counts = {lvl: sum(v.level == lvl for v in verdicts) for lvl in ("ok", "warn", "FAIL")}
    code = exit_code(verdicts)
    tail = "fix the FAIL lines above, then run it again" if code else "ready to build"
    print(f"doctor: {counts['ok']} ok, {counts['warn']} warn, {counts['FAIL']} FAIL in "
          f"{time.monotonic() - started:.1f} s: {tail}")
    return code


if __name__ == "__main__":
    sys.exit(main())
