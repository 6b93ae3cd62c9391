#!/usr/bin/env python3
"""Prints the third-party requirements of pyproject.toml for the given extras, one per line.

The Dockerfile installs these before it copies any source, so a code change reuses the cached
dependency layer. Self-references such as ``tryon-operator[operator]`` are expanded in place.
Standard library only (Python 3.11+ has tomllib).

    python hack/requirements-from-pyproject.py pyproject.toml operator > requirements.txt
"""

# Run by its path (the Dockerfile copies it alone), never imported: its name may have dashes.
# ruff: noqa: N999

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_SELF_REF = re.compile(r"^\s*(?P<name>[A-Za-z0-9._-]+)\s*\[(?P<extras>[^\]]*)\]\s*$")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """The base dependencies plus those of ``extras``, in order, without duplicates."""
    project = pyproject["project"]
    own_name = _canonical(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = []
    seen_extras: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            match = _SELF_REF.match(req)
            if match and _canonical(match["name"]) == own_name:
                add_extras([e.strip() for e in match["extras"].split(",") if e.strip()])
            elif req not in out:
                out.append(req)

    def add_extras(names: list[str]) -> None:
        for extra in names:
            if extra not in optional:
                raise SystemExit(f"unknown extra {extra!r}; known: {', '.join(sorted(optional))}")
            if extra not in seen_extras:
                seen_extras.add(extra)
                add(optional[extra])

    add(project.get("dependencies", []))
    add_extras(extras)
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = tomllib.loads(Path(argv[1]).read_text(encoding="utf-8"))
    print("\n".join(requirements(data, argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
