"""Synthetic data is seeded and deterministic; both layouts load into the same records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tryon_model.data import (
    CATEGORIES,
    DataError,
    SyntheticSpec,
    dataset_hash,
    detect_format,
    load_batch,
    make_synthetic,
    open_dataset,
    split_counts_for,
    tensor_to_image,
)

pytestmark = pytest.mark.unit


def test_same_seed_gives_identical_bytes_and_hash(tmp_path: Path) -> None:
    a = make_synthetic(tmp_path / "a", SyntheticSpec(9, height=32, width=24, seed=7))
    b = make_synthetic(tmp_path / "b", SyntheticSpec(9, height=32, width=24, seed=7))
    c = make_synthetic(tmp_path / "c", SyntheticSpec(9, height=32, width=24, seed=8))
    assert dataset_hash(a) == dataset_hash(b)
    assert dataset_hash(a) != dataset_hash(c)
    for sa, sb in zip(a.samples, b.samples, strict=True):
        assert sa.person.read_bytes() == sb.person.read_bytes()
        assert sa.mask is not None and sb.mask is not None
        assert sa.mask.read_bytes() == sb.mask.read_bytes()


def test_a_sample_depends_only_on_seed_and_index(tmp_path: Path) -> None:
    small = make_synthetic(
        tmp_path / "s", SyntheticSpec(5, height=32, width=24, seed=1, fractions=(1, 0, 0))
    )
    large = make_synthetic(
        tmp_path / "l", SyntheticSpec(12, height=32, width=24, seed=1, fractions=(1, 0, 0))
    )
    for s, l_ in zip(small.samples, large.samples[:5], strict=True):
        assert s.sample_id == l_.sample_id
        assert s.target.read_bytes() == l_.target.read_bytes()


def test_layout_sizes_masks_and_splits(tiny_dataset) -> None:
    ds = tiny_dataset
    assert ds.split_counts() == {"train": 16, "val": 2, "test": 2}
    assert detect_format(ds.root) == "tryon"
    for s in ds.samples:
        assert s.category in CATEGORIES
        with Image.open(s.person) as im:
            assert im.size == (24, 32) and im.mode == "RGB"
        assert s.mask is not None
        mask = np.asarray(Image.open(s.mask))
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert mask.max() == 255, "every sample has a try-on region"
        # Outside the mask the target equals the person; inside it differs somewhere.
        person = np.asarray(Image.open(s.person)).astype(int)
        target = np.asarray(Image.open(s.target)).astype(int)
        outside = mask == 0
        assert np.array_equal(person[outside], target[outside])
        assert np.abs(person[~outside] - target[~outside]).sum() > 0


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    make_synthetic(tmp_path / "d", SyntheticSpec(3, height=32, width=24))
    with pytest.raises(DataError, match="--overwrite"):
        make_synthetic(tmp_path / "d", SyntheticSpec(3, height=32, width=24))
    again = make_synthetic(tmp_path / "d", SyntheticSpec(4, height=32, width=24), overwrite=True)
    assert len(again.samples) == 4
    other = tmp_path / "not-a-dataset"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a tryon dataset"):
        make_synthetic(other, SyntheticSpec(3, height=32, width=24), overwrite=True)
    assert (other / "precious.txt").exists()


@pytest.mark.parametrize(
    ("count", "fractions", "expected"),
    [
        (300, (0.8, 0.1, 0.1), {"train": 240, "val": 30, "test": 30}),
        (10, (0.8, 0.1, 0.1), {"train": 8, "val": 1, "test": 1}),
        (3, (0.9, 0.05, 0.05), {"train": 1, "val": 1, "test": 1}),
        (5, (1.0, 0.0, 0.0), {"train": 5, "val": 0, "test": 0}),
    ],
)
def test_split_counts(count, fractions, expected) -> None:
    assert split_counts_for(count, fractions) == expected


@pytest.mark.parametrize(
    ("count", "fractions"), [(0, (0.8, 0.1, 0.1)), (1, (0.0, 1.0, 0.0)), (5, (0.5, 0.2, 0.2))]
)
def test_bad_split_settings(count, fractions) -> None:
    with pytest.raises(ValueError):
        split_counts_for(count, fractions)


def test_load_batch_follows_the_model_contract(tiny_dataset) -> None:
    batch = load_batch(tiny_dataset.split("train"), 32, 24)
    assert batch.person.shape == (16, 3, 32, 24)
    assert batch.mask.shape == (16, 1, 32, 24)
    assert batch.category.dtype == torch.int64
    assert batch.person.min() >= -1 and batch.person.max() <= 1
    assert set(torch.unique(batch.mask).tolist()) <= {0.0, 1.0}
    # Resizing on load (e.g. to a model's contract resolution) works too.
    assert load_batch(tiny_dataset.split("val"), 64, 48).target.shape == (2, 3, 64, 48)
    # [-1, 1] tensors round-trip to the original 8-bit pixels.
    with Image.open(tiny_dataset.split("train")[0].target) as im:
        original = np.asarray(im.convert("RGB"))
    assert np.array_equal(np.asarray(tensor_to_image(batch.target[0])), original)


def _write(path: Path, arr: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def make_vitonhd(root: Path, names: list[str], phase: str = "train") -> None:
    """A tiny VITON-HD layout: image, cloth, agnostic-v3.2, image-parse-v3 and a pairs file."""
    for name in names:
        stem = name.rsplit(".", 1)[0]
        rng = np.random.default_rng(int(stem.replace("_", "")))
        for folder in ("image", "cloth", "agnostic-v3.2"):
            _write(root / phase / folder / name, rng.integers(0, 255, (64, 48, 3), dtype=np.uint8))
        parse = np.zeros((64, 48), dtype=np.uint8)
        parse[20:40, 10:38] = 5  # upper clothes
        parse[5:15, 18:30] = 13  # face
        _write(root / phase / "image-parse-v3" / f"{stem}.png", parse, mode="L")
    lines = [f"{n} {names[(i + 1) % len(names)]}" for i, n in enumerate(names)]
    (root / f"{phase}_pairs.txt").write_text("\n".join(lines) + "\n")


def test_vitonhd_layout(tmp_path: Path) -> None:
    root = tmp_path / "viton"
    make_vitonhd(root, [f"{i:05d}_00.jpg" for i in range(30)], "train")
    make_vitonhd(root, ["90000_00.jpg", "90001_00.jpg"], "test")
    assert detect_format(root) == "vitonhd"
    ds = open_dataset(root)
    assert ds.format == "vitonhd"
    counts = ds.split_counts()
    assert counts["test"] == 2 and counts["train"] + counts.get("val", 0) == 30
    s = ds.split("test")[0]
    # Paired mode: the garment is the person's own cloth, the target the person photo.
    assert s.garment.name == s.target.name == "90000_00.jpg"
    assert s.person.parent.name == "agnostic-v3.2"
    assert s.mask is not None and s.mask.parent.name == "image-parse-v3"
    batch = load_batch(ds.split("test"), 32, 24)
    # Label 5 (upper clothes) becomes the mask; the face (13) does not.
    assert 0 < float(batch.mask.mean()) < 0.5


def test_vitonhd_unpaired_mode_uses_the_pairs_file(tmp_path: Path) -> None:
    from tryon_model.data import load_vitonhd

    root = tmp_path / "viton"
    make_vitonhd(root, ["00000_00.jpg", "00001_00.jpg"], "test")
    ds = load_vitonhd(root, paired=False)
    first = ds.split("test")[0]
    assert first.person.name == "00000_00.jpg" and first.garment.name == "00001_00.jpg"


def test_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a tryon dataset"):
        open_dataset(tmp_path / "empty")
