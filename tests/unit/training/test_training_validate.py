"""`validate` passes clean data and names the offending files for every kind of bad data."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tryon_model.data import INDEX_FILE, dataset_hash, load_tryon
from tryon_model.validate import validate_dataset

pytestmark = pytest.mark.unit


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / INDEX_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(root: Path, rows: list[dict[str, str]]) -> None:
    with open(root / INDEX_FILE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_clean_dataset_passes_with_the_same_hash(tiny_dataset) -> None:
    report = validate_dataset(tiny_dataset, show_progress=False)
    assert report.ok, report.render()
    assert report.issues == []
    assert report.dataset_hash == dataset_hash(tiny_dataset)
    assert "0 error(s), 0 warning(s): OK" in report.render()


def test_every_corruption_is_caught_and_named(tiny_dataset) -> None:
    root = tiny_dataset.root
    rows = _rows(root)
    train = [r for r in rows if r["split"] == "train"]
    test_rows = [r for r in rows if r["split"] == "test"]
    # 1. truncated person image
    truncated = root / train[0]["person"]
    truncated.write_bytes(truncated.read_bytes()[:40])
    # 2. non-binary (anti-aliased) mask
    mask_path = root / train[1]["mask"]
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[mask == 255] = 200
    mask[0, 0] = 17
    Image.fromarray(mask, mode="L").save(mask_path)
    # 3. missing garment
    missing = root / train[2]["garment"]
    missing.unlink()
    # 4. wrong size target
    Image.new("RGB", (30, 40), (1, 2, 3)).save(root / train[3]["target"])
    # 5. a test sample copied into train under a new id: split leakage
    leak = dict(test_rows[0], sample_id="leaked", split="train")
    for kind in ("person", "garment", "target", "mask"):
        new_rel = f"train/{kind}/leaked.png"
        shutil.copy(root / test_rows[0][kind], root / new_rel)
        leak[kind] = new_rel
    # 6. an exact duplicate within train
    dup = dict(train[4], sample_id="dup")
    # 7. a file nobody references
    shutil.copy(root / train[5]["garment"], root / "train" / "garment" / "orphan.png")
    # 8. unknown category
    train[6]["category"] = "hat"
    _write_rows(root, [*rows, leak, dup])

    report = validate_dataset(load_tryon(root), show_progress=False)
    assert not report.ok
    found = {(i.code, i.path) for i in report.errors}
    expected = {
        ("undecodable", train[0]["person"]),
        ("mask_not_binary", train[1]["mask"]),
        ("missing_file", train[2]["garment"]),
        ("wrong_size", train[3]["target"]),
        ("split_leakage", "train/person/leaked.png"),
        ("duplicate_sample", train[4]["person"]),
        ("unpaired_file", "train/garment/orphan.png"),
        ("unknown_category", train[6]["person"]),
    }
    assert expected <= found, report.render()
    text = report.render()
    for _, path in expected:
        assert path in text
    assert "FAILED" in text
    assert report.dataset_hash is None  # incomplete data has no hash
    assert report.to_dict()["ok"] is False


def test_empty_splits_are_errors(tmp_path: Path) -> None:
    from tryon_model.data import SyntheticSpec, make_synthetic

    ds = make_synthetic(
        tmp_path / "d", SyntheticSpec(4, height=32, width=24, fractions=(1.0, 0.0, 0.0))
    )
    report = validate_dataset(ds, show_progress=False)
    assert [i.code for i in report.errors] == ["empty_split"]
    assert "val or test" in report.errors[0].message


def test_warnings_do_not_fail(tiny_dataset) -> None:
    root = tiny_dataset.root
    row = _rows(root)[0]
    Image.new("L", (24, 32), 0).save(root / row["mask"])
    shutil.copy(root / row["person"], root / row["target"])
    report = validate_dataset(load_tryon(root), show_progress=False)
    assert report.ok
    assert {i.code for i in report.warnings} == {"empty_mask", "target_equals_person"}


def test_vitonhd_missing_cloth_is_named(tmp_path: Path) -> None:
    from tryon_model.data import open_dataset

    from tests.unit.training.test_training_data import make_vitonhd

    root = tmp_path / "viton"
    make_vitonhd(root, ["00000_00.jpg", "00001_00.jpg", "00002_00.jpg"], "train")
    make_vitonhd(root, ["90000_00.jpg"], "test")
    (root / "train" / "cloth" / "00001_00.jpg").unlink()
    report = validate_dataset(open_dataset(root), show_progress=False)
    assert [(i.code, i.path) for i in report.errors] == [
        ("missing_file", "train/cloth/00001_00.jpg")
    ]
