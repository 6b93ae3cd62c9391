"""Dataset layouts: the record types and the loaders for the ``tryon`` and ``vitonhd`` layouts.

Both layouts become the same `Dataset` of `Sample` records.

``tryon`` (written by ``tryon-model data make``)::

    root/dataset.json              format, version, size, categories, generator settings
    root/index.csv                 sample_id,split,category,person,garment,target,mask
    root/<split>/person/<id>.png   the shopper photo (wearing their own clothes)
    root/<split>/garment/<id>.png  the garment on a plain background
    root/<split>/target/<id>.png   ground truth: the same person wearing the garment
    root/<split>/mask/<id>.png     binary (0/255) try-on region in the target

``vitonhd`` (the public VITON-HD release)::

    root/train_pairs.txt, root/test_pairs.txt        "<person>.jpg <cloth>.jpg" per line
    root/{train,test}/image/            person photos; the ground truth in paired mode
    root/{train,test}/cloth/            garment photos
    root/{train,test}/agnostic-v3.2/    person with the garment area greyed out (network input)
    root/{train,test}/image-parse-v3/   LIP label maps; labels 5,6,7 (upper clothes, dress, coat)
                                        give the try-on mask

VITON-HD has no validation split; a deterministic slice of train (by name hash) becomes ``val``.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS: tuple[str, ...] = ("train", "val", "test")
CATEGORIES: tuple[str, ...] = ("upper", "lower", "dress")
DATASET_FILE = "dataset.json"
INDEX_FILE = "index.csv"
INDEX_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "split",
    "category",
    "person",
    "garment",
    "target",
    "mask",
)
FORMAT_NAME = "tryon-dataset"
FORMAT_VERSION = 1
GENERATOR_NAME = "synthetic-figures-v1"
VITONHD_GARMENT_LABELS: tuple[int, ...] = (5, 6, 7)


class DataError(Exception):
    """The dataset cannot be read at all (missing layout files, unreadable index)."""


@dataclass(frozen=True)
class Sample:
    """One training example; paths are absolute."""

    sample_id: str
    split: str
    category: str
    person: Path
    garment: Path
    target: Path
    mask: Path | None
    # When set, `mask` is a label map and these labels form the garment region.
    mask_labels: tuple[int, ...] | None = None

    def files(self) -> list[tuple[str, Path]]:
        out = [("person", self.person), ("garment", self.garment), ("target", self.target)]
        if self.mask is not None:
            out.append(("mask", self.mask))
        return out


@dataclass(frozen=True)
class Dataset:
    """A set of samples plus what the layout declares about them."""

    root: Path
    format: str
    samples: tuple[Sample, ...]
    height: int | None = None
    width: int | None = None
    categories: tuple[str, ...] = CATEGORIES
    meta: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def split_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.samples:
            counts[s.split] = counts.get(s.split, 0) + 1
        return counts

    def rel(self, path: Path) -> str:
        """Path relative to the dataset root, for readable reports."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def load_tryon(root: Path) -> Dataset:
    """Read a dataset in the ``tryon`` layout (structure only; `validate` checks the content)."""
    root = Path(root).resolve()
    meta_path = root / DATASET_FILE
    index_path = root / INDEX_FILE
    if not meta_path.is_file():
        raise DataError(f"{root} has no {DATASET_FILE}; is it a tryon dataset?")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{meta_path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{meta_path}: 'format' must be {FORMAT_NAME!r}")
    if not index_path.is_file():
        raise DataError(f"{root} has no {INDEX_FILE}")
    samples: list[Sample] = []
    with open(index_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{index_path}: missing columns {missing}")
        for row in reader:
            mask = (row.get("mask") or "").strip()
            samples.append(
                Sample(
                    sample_id=row["sample_id"],
                    split=row["split"],
                    category=row["category"],
                    person=root / row["person"],
                    garment=root / row["garment"],
                    target=root / row["target"],
                    mask=root / mask if mask else None,
                )
            )
    height = meta.get("height")
    width = meta.get("width")
    return Dataset(
        root=root,
        format="tryon",
        samples=tuple(samples),
        height=int(height) if isinstance(height, int) else None,
        width=int(width) if isinstance(width, int) else None,
        categories=tuple(meta.get("categories") or CATEGORIES),
        meta=meta,
    )


def _first_dir(base: Path, names: Iterable[str]) -> Path | None:
    for name in names:
        if (base / name).is_dir():
            return base / name
    return None


def _in_val(name: str, val_percent: int) -> bool:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < val_percent


def _read_pairs(root: Path, phase: str, paired: bool, notes: list[str]) -> list[tuple[str, str]]:
    """(person, cloth) file names of one phase: from its pairs file, else image/ by name."""
    base = root / phase
    pairs_file = root / f"{phase}_pairs.txt"
    if pairs_file.is_file():
        pairs: list[tuple[str, str]] = []
        for lineno, line in enumerate(pairs_file.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DataError(f"{pairs_file}:{lineno}: expected '<person> <cloth>'")
            pairs.append((parts[0], parts[0] if paired else parts[1]))
        return pairs
    if (base / "image").is_dir():
        notes.append(f"{pairs_file.name} missing: pairing {phase}/image with {phase}/cloth by name")
        return [(p.name, p.name) for p in sorted((base / "image").iterdir()) if p.is_file()]
    raise DataError(f"{base} has neither {pairs_file.name} nor an image/ folder")


def _phase_samples(
    root: Path, phase: str, paired: bool, val_percent: int, notes: list[str]
) -> list[Sample]:
    """The samples of one VITON-HD phase (train or test); a slice of train becomes val."""
    base = root / phase
    pairs = _read_pairs(root, phase, paired, notes)
    agnostic = _first_dir(base, ("agnostic-v3.2", "agnostic"))
    parse = _first_dir(base, ("image-parse-v3", "image-parse"))
    if agnostic is None:
        notes.append(f"{phase}: no agnostic-v3.2/ folder; the person input is the target itself")
    if parse is None:
        notes.append(f"{phase}: no image-parse-v3/ folder; no try-on masks (masked metrics off)")
    samples: list[Sample] = []
    for person_name, cloth_name in pairs:
        stem = Path(person_name).stem
        split = phase
        if phase == "train" and _in_val(stem, val_percent):
            split = "val"
        samples.append(
            Sample(
                sample_id=stem if paired else f"{stem}__{Path(cloth_name).stem}",
                split=split,
                category="upper",
                person=(agnostic or base / "image") / person_name,
                garment=base / "cloth" / cloth_name,
                target=base / "image" / person_name,
                mask=(parse / f"{stem}.png") if parse is not None else None,
                mask_labels=VITONHD_GARMENT_LABELS if parse is not None else None,
            )
        )
    return samples


def load_vitonhd(root: Path, paired: bool = True, val_percent: int = 5) -> Dataset:
    """Read the VITON-HD layout; paired mode uses each person's own garment (ground truth)."""
    root = Path(root).resolve()
    phases = [phase for phase in ("train", "test") if (root / phase).is_dir()]
    if not phases:
        raise DataError(f"{root} has no train/ or test/ folder; is it a VITON-HD dataset?")
    samples: list[Sample] = []
    notes: list[str] = []
    for phase in phases:
        samples += _phase_samples(root, phase, paired, val_percent, notes)
    return Dataset(
        root=root,
        format="vitonhd",
        samples=tuple(samples),
        categories=CATEGORIES,
        meta={"format": "vitonhd", "paired": paired, "val_percent": val_percent},
        notes=tuple(notes),
    )


def detect_format(root: Path) -> str:
    root = Path(root)
    if (root / DATASET_FILE).is_file():
        return "tryon"
    if (root / "train_pairs.txt").is_file() or (root / "test_pairs.txt").is_file():
        return "vitonhd"
    if (root / "train" / "image").is_dir() or (root / "test" / "image").is_dir():
        return "vitonhd"
    if not root.exists():
        raise DataError(f"{root} does not exist")
    raise DataError(f"{root}: neither a tryon dataset ({DATASET_FILE}) nor a VITON-HD layout")


def open_dataset(root: Path, fmt: str = "auto") -> Dataset:
    """Open a dataset directory in either layout (`fmt`: auto, tryon, vitonhd)."""
    if fmt == "auto":
        fmt = detect_format(root)
    if fmt == "tryon":
        return load_tryon(root)
    if fmt == "vitonhd":
        return load_vitonhd(root)
    raise DataError(f"unknown dataset format {fmt!r}; expected auto, tryon or vitonhd")
