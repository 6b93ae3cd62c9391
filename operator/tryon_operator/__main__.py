"""``tryon-operator``: runs the kopf operator with the project's settings."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import kopf

from .runtime.handlers import register
from .settings import OperatorSettings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tryon-operator",
        description="Ships try-on models from the MLflow registry as blue/green GPU Deployments.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch the whole cluster (default when no namespace is given)",
    )
    parser.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = OperatorSettings.from_env()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(registry, settings, tuple(args.namespace))
    clusterwide = args.all_namespaces or not args.namespace
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=clusterwide,
            namespaces=() if clusterwide else tuple(args.namespace),
            liveness_endpoint=args.liveness,
        )
    )


if __name__ == "__main__":
    main()
