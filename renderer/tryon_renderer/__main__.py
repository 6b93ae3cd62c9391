"""`tryon-renderer` entry point: settings from env (TRYON_*) overridden by flags, then uvicorn.

Why a custom uvicorn.Server subclass: on SIGTERM we flip the app to "draining" first (readiness
fails, new requests get 503 + Retry-After) while uvicorn stops accepting connections and waits
for in-flight requests; the lifespan shutdown then drains the batching queue.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from .app import RendererState, create_app
from .loading import FAST_FAIL_MLFLOW_ENV
from .settings import Settings


class DrainingServer(uvicorn.Server):
    """uvicorn server that marks the renderer as draining as soon as a signal arrives."""

    def __init__(self, config: uvicorn.Config, state: RendererState) -> None:
        super().__init__(config)
        self.renderer_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.renderer_state.draining = True
        self.renderer_state.metrics.ready.set(0)
        super().handle_exit(sig, frame)


def parse_args(argv: list[str] | None = None) -> dict[str, Any]:
    """Flags override environment; only flags actually given are returned."""
    parser = argparse.ArgumentParser(prog="tryon-renderer", description=__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--model-uri", help="models:/<name>/<version> or models:/<name>@<alias>")
    parser.add_argument("--model-path", type=Path, help="local model directory (development)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--max-batch-size", type=int)
    parser.add_argument("--max-wait-ms", type=float)
    parser.add_argument("--max-queue", type=int)
    parser.add_argument("--allowed-bucket")
    parser.add_argument("--log-level", default="info")
    args = vars(parser.parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


def main(argv: list[str] | None = None) -> None:
    for var, value in FAST_FAIL_MLFLOW_ENV.items():
        os.environ.setdefault(var, value)  # explicit settings win
    overrides = parse_args(argv)
    log_level = str(overrides.pop("log_level", "info"))
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings(**overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
        access_log=False,
    )
    DrainingServer(config, app.state.renderer).run()


if __name__ == "__main__":
    main()
