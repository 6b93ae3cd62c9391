"""The MLflow run that `train` logs into: params, metrics and the packaged model.

Split from `train.py` so the training flow reads top to bottom there; every call here goes
through `Registry._translate`, so MLflow failures surface as one-line `RegistryError`s.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    from tryon_renderer.contract import ModelContract
    from tryon_renderer.network import TryOnNetwork
    from tryon_renderer.packaging import GoldenSpec


@dataclass(frozen=True)
class TrainingRun:
    """An open MLflow run of the training experiment."""

    registry: Registry
    experiment_id: str
    run_id: str
    artifact_uri: str

    @classmethod
    def start(
        cls, registry: Registry, experiment: str, run_name: str | None, tags: Mapping[str, str]
    ) -> TrainingRun:
        """Create the experiment if needed and open a run in it."""
        client = registry.client
        with registry._translate(f"experiment {experiment!r}"):
            exp = client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
            run = client.create_run(exp_id, run_name=run_name, tags=dict(tags))
        return cls(registry, str(exp_id), run.info.run_id, run.info.artifact_uri)

    def log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        with self.registry._translate("logging params"):
            self.registry.client.log_batch(
                self.run_id, params=[Param(k, v) for k, v in params.items()]
            )

    def log_metrics(self, values: Mapping[str, float], step: int, what: str) -> None:
        """Log the finite values at `step` (MLflow rejects NaN and infinity)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts, step) for k, v in values.items() if math.isfinite(v)]
        with self.registry._translate(what):
            self.registry.client.log_batch(self.run_id, metrics=metrics)

    def log_model(self, net: TryOnNetwork, contract: ModelContract, golden: GoldenSpec) -> str:
        """Write the renderer's native layout into the run; returns its source URI."""
        from tryon_renderer.packaging import ARTIFACT_PATH, write_model_dir

        with tempfile.TemporaryDirectory(prefix="tryon-train-") as tmp:
            model_dir = write_model_dir(
                net, Path(tmp) / ARTIFACT_PATH, contract=contract, golden=golden
            )
            with self.registry._translate("uploading the model artifacts"):
                self.registry.client.log_artifacts(self.run_id, str(model_dir), ARTIFACT_PATH)
        return f"{self.artifact_uri}/{ARTIFACT_PATH}"

    def finish(self, status: str) -> None:
        """Mark the run FINISHED or FAILED; never raises (it runs while an error propagates)."""
        with contextlib.suppress(Exception):
            self.registry.client.set_terminated(self.run_id, status)
