"""Package a try-on network as an MLflow model version (the renderer's native format).

Why our own layout instead of a pickled model: weights are stored as a plain state dict loaded
with `torch.load(weights_only=True)` (no arbitrary code from the registry), the architecture is a
small JSON description, every file has a SHA-256 in `checksums.json` (verified on download and on
cache reuse), and the golden smoke set travels with the version.

Layout of the version's artifact directory:
    tryon_model.json      {"format": "tryon-native", "arch": {...}, "weights": "weights.pt"}
    tryon_contract.json   the model contract (resolution, categories, normalisation)
    weights.pt            state dict
    golden/               golden.json, person_i.png, garment_i.png, reference_i.png
    checksums.json        {"files": {"relative/path": "sha256"}}
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .contract import ModelContract
from .golden import (
    GOLDEN_DIR,
    GOLDEN_INDEX,
    GoldenCase,
    GoldenIndex,
    synthetic_garment,
    synthetic_person,
)
from .hashing import sha256_file
from .images import encode_image, to_tensor
from .network import FAILURE_MODES, TryOnNetwork

MODEL_INDEX = "tryon_model.json"
WEIGHTS_FILE = "weights.pt"
CHECKSUMS_FILE = "checksums.json"
NATIVE_FORMAT = "tryon-native"
ARTIFACT_PATH = "model"


@dataclass(frozen=True)
class GoldenSpec:
    """How the golden smoke set is built: the renderer's smoke test replays it after every load."""

    num_cases: int = 2
    latency_budget_ms: float = 5000.0
    tolerance: float = 0.03


def write_checksums(model_dir: Path) -> dict[str, str]:
    """Hash every file (except the checksum file itself) and write checksums.json."""
    files = {
        p.relative_to(model_dir).as_posix(): sha256_file(p)
        for p in sorted(model_dir.rglob("*"))
        if p.is_file() and p.name != CHECKSUMS_FILE
    }
    (model_dir / CHECKSUMS_FILE).write_text(json.dumps({"files": files}, indent=2))
    return files


def _write_golden(net: nn.Module, contract: ModelContract, dest: Path, golden: GoldenSpec) -> None:
    """Synthesise golden inputs and store the healthy network's outputs as references."""
    root = dest / GOLDEN_DIR
    root.mkdir(parents=True, exist_ok=True)
    cases: list[GoldenCase] = []
    net.eval()
    for i in range(golden.num_cases):
        person = synthetic_person(contract, seed=i)
        garment = synthetic_garment(contract, seed=i)
        category = contract.categories[i % len(contract.categories)]
        person.save(root / f"person_{i}.png")
        garment.save(root / f"garment_{i}.png")
        with torch.inference_mode():
            out = net(
                to_tensor(person, contract.height, contract.width)[None],
                to_tensor(garment, contract.height, contract.width)[None],
                torch.tensor([contract.category_index(category)]),
            )[0]
        (root / f"reference_{i}.png").write_bytes(encode_image(out))
        cases.append(
            GoldenCase(
                person=f"person_{i}.png",
                garment=f"garment_{i}.png",
                category=category,
                reference=f"reference_{i}.png",
            )
        )
    index = GoldenIndex(
        cases=cases, tolerance=golden.tolerance, latency_budget_ms=golden.latency_budget_ms
    )
    (root / GOLDEN_INDEX).write_text(index.model_dump_json(indent=2))


def write_model_dir(
    net: TryOnNetwork,
    dest: Path,
    *,
    contract: ModelContract | None = None,
    failure_mode: str | None = None,
    golden: GoldenSpec = GoldenSpec(),
) -> Path:
    """Write the native model layout to `dest`.

    failure_mode ("nan" or "blank") makes a deliberately broken model: the served output is
    corrupted while the golden references come from the healthy network, so the renderer's smoke
    test fails, which is what rollback tests need.
    """
    if failure_mode is not None and failure_mode not in FAILURE_MODES:
        raise ValueError(f"failure_mode must be one of {FAILURE_MODES}")
    contract = contract or ModelContract()
    dest.mkdir(parents=True, exist_ok=True)
    contract.save(dest)
    torch.save(net.state_dict(), dest / WEIGHTS_FILE)
    arch: dict[str, Any] = {"name": net.arch_name, "config": net.config.to_dict()}
    if failure_mode:
        arch["failure_mode"] = failure_mode
    index = {"format": NATIVE_FORMAT, "arch": arch, "weights": WEIGHTS_FILE}
    (dest / MODEL_INDEX).write_text(json.dumps(index, indent=2))
    _write_golden(net, contract, dest, golden)
    write_checksums(dest)
    return dest


def log_tryon_model(  # noqa: PLR0913 - keyword-only public API (docs/renderer.md, hack/, e2e)
    net: TryOnNetwork,
    registered_model_name: str,
    *,
    tracking_uri: str | None = None,
    contract: ModelContract | None = None,
    failure_mode: str | None = None,
    experiment_name: str = "tryon-renderer",
    aliases: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
    golden: GoldenSpec = GoldenSpec(),
) -> Any:
    """Log the network (+ golden set) to a new MLflow run and register it as a new version.

    Returns the MLflow ModelVersion. The run's artifacts go wherever the tracking server's
    artifact root points (S3 in our deployments). Aliases, if given, are set on the new version.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    exp_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name)
    run = client.create_run(exp_id, tags={"tryon.failure_mode": failure_mode or "none"})
    with tempfile.TemporaryDirectory(prefix="tryon-pkg-") as tmp:
        model_dir = write_model_dir(
            net,
            Path(tmp) / ARTIFACT_PATH,
            contract=contract,
            failure_mode=failure_mode,
            golden=golden,
        )
        client.log_artifacts(run.info.run_id, str(model_dir), ARTIFACT_PATH)
    client.set_terminated(run.info.run_id)
    _ensure_registered_model(client, registered_model_name)
    version = client.create_model_version(
        registered_model_name,
        source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
        run_id=run.info.run_id,
        tags={"tryon.format": NATIVE_FORMAT, **(tags or {})},
    )
    for alias in aliases:
        client.set_registered_model_alias(registered_model_name, alias, version.version)
    return version


def _ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
