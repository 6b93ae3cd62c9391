"""Try-on datasets: a seeded synthetic generator, the on-disk format, and a VITON-HD loader.

Two layouts are understood; both become the same `Dataset` of `Sample` records.

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

Synthetic data: every sample is drawn from ``numpy.random.default_rng([seed, index])``, so a sample
depends only on the seed and its index (not on how many are generated) and PNG bytes are identical
run to run. A figure (head, arms, torso, legs) wears its own top and trousers; the garment image
shows a new garment flat on a plain background; the target repaints the garment's region on the
body with the garment's texture mapped affinely from the flat image: learning it needs a warp.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .progress import Progress

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


# --------------------------------------------------------------------------- synthetic data


def _texture_fn(rng: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A garment texture as a function of garment coordinates (u, v) in [0, 1]."""
    base = rng.integers(30, 226, size=3)
    second = rng.integers(30, 226, size=3)
    # Keep the two colours apart so the pattern is visible.
    while int(np.abs(base - second).sum()) < 120:
        second = rng.integers(30, 226, size=3)
    pattern = int(rng.integers(0, 4))  # 0 solid, 1 horizontal stripes, 2 vertical, 3 checks
    freq = int(rng.integers(2, 6))

    def texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        if pattern == 0:
            sel = np.zeros(u.shape, dtype=bool)
        elif pattern == 1:
            sel = np.floor(v * freq).astype(int) % 2 == 1
        elif pattern == 2:
            sel = np.floor(u * freq).astype(int) % 2 == 1
        else:
            sel = (np.floor(u * freq).astype(int) + np.floor(v * freq).astype(int)) % 2 == 1
        out = np.empty((*u.shape, 3), dtype=np.uint8)
        out[...] = base.astype(np.uint8)
        out[sel] = second.astype(np.uint8)
        return out

    return texture


def _shape(category: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Garment silhouette in its own unit square (u across, v down)."""
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if category == "upper":  # T-shirt: short sleeves over the top 30%, body in the middle 60%
        return inside & ((v < 0.3) | ((u >= 0.2) & (u <= 0.8)))
    if category == "lower":  # trousers: waistband, then two legs with a gap
        return inside & ((v < 0.15) | (np.abs(u - 0.5) >= 0.05))
    if category == "dress":  # A-line: widens towards the hem
        return inside & (np.abs(u - 0.5) <= 0.3 + 0.2 * v)
    raise ValueError(f"unknown category {category!r}")


@dataclass(frozen=True)
class _Box:
    x0: float
    x1: float
    y0: float
    y1: float

    def uv(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (xs - self.x0) / (self.x1 - self.x0), (ys - self.y0) / (self.y1 - self.y0)


def _paint(
    img: np.ndarray,
    box: _Box,
    category: str,
    texture: Callable[[np.ndarray, np.ndarray], np.ndarray],
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Paint a garment into `img` inside `box`; returns the painted region."""
    u, v = box.uv(xs, ys)
    region = _shape(category, u, v)
    img[region] = texture(u, v)[region]
    return region


def render_sample(
    rng: np.random.Generator, height: int, width: int, category: str | None = None
) -> dict[str, Any]:
    """Draw one synthetic (person, garment, target, mask, category) example as uint8 arrays."""
    if category is None:
        category = CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    ys = (ys + 0.5) / height
    xs = (xs + 0.5) / width
    aspect = height / width

    cx = rng.uniform(0.42, 0.58)
    s = rng.uniform(0.8, 1.0)
    top = rng.uniform(0.02, 0.06)
    skin = np.array(
        [(224, 172, 140), (198, 134, 96), (141, 85, 54), (241, 194, 160)][int(rng.integers(0, 4))],
        dtype=np.uint8,
    )
    bg_top = rng.integers(170, 250, size=3)
    bg_bottom = np.clip(bg_top - rng.integers(0, 40, size=3), 0, 255)
    person = bg_top[None, None, :] * (1 - ys[..., None]) + bg_bottom[None, None, :] * ys[..., None]
    person = person.astype(np.uint8)

    y_sh = top + 0.19 * s
    y_waist = top + 0.5 * s
    y_feet = min(top + 0.95 * s, 0.99)
    upper_box = _Box(cx - 0.27 * s, cx + 0.27 * s, y_sh, y_waist)
    lower_box = _Box(cx - 0.16 * s, cx + 0.16 * s, y_waist, y_feet)
    dress_box = _Box(cx - 0.27 * s, cx + 0.27 * s, y_sh, y_waist + 0.3 * s)
    boxes = {"upper": upper_box, "lower": lower_box, "dress": dress_box}

    # Arms and legs (skin) under the clothes, head on top.
    arms = (np.abs(xs - cx) <= 0.27 * s) & (np.abs(xs - cx) >= 0.17 * s)
    arms &= (ys >= y_sh) & (ys <= y_sh + 0.3 * s)
    legs = (np.abs(xs - cx) <= 0.15 * s) & (np.abs(xs - cx) >= 0.01) & (ys >= y_waist)
    legs &= ys <= y_feet
    person[arms | legs] = skin
    own_lower = _texture_fn(rng)
    own_upper = _texture_fn(rng)
    lower_region = _paint(person, lower_box, "lower", own_lower, xs, ys)
    upper_region = _paint(person, upper_box, "upper", own_upper, xs, ys)
    head = ((xs - cx) / aspect) ** 2 + (ys - (top + 0.1 * s)) ** 2 <= (0.08 * s) ** 2
    person[head] = skin

    # The new garment, flat and centred on a light background.
    new_texture = _texture_fn(rng)
    garment = np.full((height, width, 3), int(rng.integers(235, 256)), dtype=np.uint8)
    gw = rng.uniform(0.65, 0.9)
    gh = rng.uniform(0.55, 0.85)
    gx = 0.5 + rng.uniform(-0.04, 0.04)
    gy = 0.5 + rng.uniform(-0.04, 0.04)
    _paint(
        garment,
        _Box(gx - gw / 2, gx + gw / 2, gy - gh / 2, gy + gh / 2),
        category,
        new_texture,
        xs,
        ys,
    )

    # Ground truth: the person wearing the new garment.
    target = person.copy()
    if category == "dress":
        # Under a dress: bare arms and legs where the old top and trousers were.
        target[upper_region | lower_region] = skin
        changed = upper_region | lower_region
    else:
        changed = np.zeros_like(upper_region)
    region = _paint(target, boxes[category], category, new_texture, xs, ys)
    target[head] = skin
    mask = ((region | changed) & ~head).astype(np.uint8) * 255
    return {
        "person": person,
        "garment": garment,
        "target": target,
        "mask": mask,
        "category": category,
    }


def split_counts_for(count: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Integer split sizes; val and test get at least one sample each when count >= 3."""
    if count < 1:
        raise ValueError("count must be at least 1")
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n_val = round(fractions[1] * count)
    n_test = round(fractions[2] * count)
    if count >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = count - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{count} samples leave no training data with fractions {fractions}")
    return {"train": n_train, "val": n_val, "test": n_test}


def make_synthetic(
    root: Path,
    count: int,
    height: int = 64,
    width: int = 48,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    show_progress: bool = True,
) -> Dataset:
    """Generate a synthetic dataset under `root` in the ``tryon`` layout."""
    if height < 16 or width < 16:
        raise ValueError(f"image size must be at least 16x16, got {height}x{width}")
    counts = split_counts_for(count, fractions)
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DataError(f"{root} exists and is not empty (use --overwrite to replace it)")
        if not (root / DATASET_FILE).exists():
            raise DataError(f"refusing to overwrite {root}: it is not a tryon dataset")
        shutil.rmtree(root)
    for split in SPLITS:
        for kind in ("person", "garment", "target", "mask"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, str]] = []
    split_of = ["train"] * counts["train"] + ["val"] * counts["val"] + ["test"] * counts["test"]
    with Progress(count, "generating", enabled=None if show_progress else False) as bar:
        for index in range(count):
            rng = np.random.default_rng([seed, index])
            example = render_sample(rng, height, width)
            split = split_of[index]
            sample_id = f"{index:06d}"
            row = {"sample_id": sample_id, "split": split, "category": example["category"]}
            for kind in ("person", "garment", "target", "mask"):
                rel = f"{split}/{kind}/{sample_id}.png"
                mode = "L" if kind == "mask" else "RGB"
                Image.fromarray(example[kind], mode=mode).save(root / rel, optimize=False)
                row[kind] = rel
            rows.append(row)
            bar.update()

    with open(root / INDEX_FILE, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(INDEX_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "height": height,
        "width": width,
        "categories": list(CATEGORIES),
        "generator": {"name": GENERATOR_NAME, "seed": seed, "count": count},
        "splits": counts,
    }
    (root / DATASET_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return load_tryon(root)


# --------------------------------------------------------------------------- loading layouts


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


def load_vitonhd(root: Path, paired: bool = True, val_percent: int = 5) -> Dataset:
    """Read the VITON-HD layout; paired mode uses each person's own garment (ground truth)."""
    root = Path(root).resolve()
    samples: list[Sample] = []
    notes: list[str] = []
    found = False
    for phase in ("train", "test"):
        base = root / phase
        pairs_file = root / f"{phase}_pairs.txt"
        if not base.is_dir():
            continue
        found = True
        if pairs_file.is_file():
            pairs: list[tuple[str, str]] = []
            for lineno, line in enumerate(pairs_file.read_text().splitlines(), start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise DataError(f"{pairs_file}:{lineno}: expected '<person> <cloth>'")
                pairs.append((parts[0], parts[0] if paired else parts[1]))
        elif (base / "image").is_dir():
            pairs = [(p.name, p.name) for p in sorted((base / "image").iterdir()) if p.is_file()]
            notes.append(
                f"{pairs_file.name} missing: pairing {phase}/image with {phase}/cloth by name"
            )
        else:
            raise DataError(f"{base} has neither {pairs_file.name} nor an image/ folder")
        agnostic = _first_dir(base, ("agnostic-v3.2", "agnostic"))
        parse = _first_dir(base, ("image-parse-v3", "image-parse"))
        if agnostic is None:
            notes.append(
                f"{phase}: no agnostic-v3.2/ folder; the person input is the target itself"
            )
        if parse is None:
            notes.append(
                f"{phase}: no image-parse-v3/ folder; no try-on masks (masked metrics off)"
            )
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
    if not found:
        raise DataError(f"{root} has no train/ or test/ folder; is it a VITON-HD dataset?")
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


# --------------------------------------------------------------------------- hashing, tensors


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_hash(ds: Dataset, show_progress: bool = False) -> str:
    """Content hash of every sample: ids, splits, categories and file bytes (order-independent)."""
    lines: list[str] = []
    with Progress(len(ds.samples), "hashing", enabled=None if show_progress else False) as bar:
        for s in ds.samples:
            lines.append(sample_hash_line(s, {kind: file_sha256(p) for kind, p in s.files()}))
            bar.update()
    return combine_hash_lines(lines)


def sample_hash_line(sample: Sample, file_hashes: dict[str, str]) -> str:
    """One sample's contribution to the dataset hash (`file_hashes`: kind -> sha256 hex)."""
    hashes = [f"{kind}={file_hashes[kind]}" for kind, _ in sample.files()]
    return "|".join([sample.sample_id, sample.split, sample.category, *hashes])


def combine_hash_lines(lines: list[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


@dataclass
class Batch:
    """Tensors for a set of samples, following the renderer's model contract."""

    person: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    garment: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    target: torch.Tensor  # (N, 3, H, W) float32 in [-1, 1]
    mask: torch.Tensor  # (N, 1, H, W) float32 in {0, 1}; all ones when the dataset has no masks
    category: torch.Tensor  # (N,) int64
    sample_ids: list[str]

    def __len__(self) -> int:
        return int(self.person.shape[0])

    def slice(self, start: int, stop: int) -> Batch:
        return Batch(
            self.person[start:stop],
            self.garment[start:stop],
            self.target[start:stop],
            self.mask[start:stop],
            self.category[start:stop],
            self.sample_ids[start:stop],
        )

    def index(self, idx: torch.Tensor) -> Batch:
        ids = [self.sample_ids[int(i)] for i in idx]
        return Batch(
            self.person[idx],
            self.garment[idx],
            self.target[idx],
            self.mask[idx],
            self.category[idx],
            ids,
        )

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.person.to(device),
            self.garment.to(device),
            self.target.to(device),
            self.mask.to(device),
            self.category.to(device),
            self.sample_ids,
        )


def image_to_tensor(img: Image.Image, height: int, width: int) -> torch.Tensor:
    """RGB image -> (3, H, W) float32 in [-1, 1] (contract normalisation: pixel / 127.5 - 1)."""
    img = img.convert("RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> 8-bit RGB image (pixel = (y + 1) * 127.5)."""
    arr = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte()
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def load_mask(sample: Sample, height: int, width: int) -> torch.Tensor:
    """(1, H, W) float32 in {0, 1}; all ones when the sample has no mask."""
    if sample.mask is None:
        return torch.ones(1, height, width)
    with Image.open(sample.mask) as img:
        arr = np.asarray(img)
        if arr.ndim == 3:
            arr = arr[..., 0]
        if sample.mask_labels is not None:
            binary = np.isin(arr, np.array(sample.mask_labels))
        else:
            binary = arr > 127 if arr.max() > 1 else arr > 0
    small = Image.fromarray(binary.astype(np.uint8) * 255, mode="L")
    if small.size != (width, height):
        small = small.resize((width, height), Image.Resampling.NEAREST)
    return torch.from_numpy((np.asarray(small) > 127).astype(np.float32))[None]


def load_batch(
    samples: list[Sample],
    height: int,
    width: int,
    categories: tuple[str, ...] = CATEGORIES,
    label: str | None = None,
) -> Batch:
    """Decode and stack samples at (height, width)."""
    persons, garments, targets, masks, cats = [], [], [], [], []
    with Progress(len(samples), label or "loading", enabled=label is not None) as bar:
        for s in samples:
            with Image.open(s.person) as im:
                persons.append(image_to_tensor(im, height, width))
            with Image.open(s.garment) as im:
                garments.append(image_to_tensor(im, height, width))
            with Image.open(s.target) as im:
                targets.append(image_to_tensor(im, height, width))
            masks.append(load_mask(s, height, width))
            if s.category not in categories:
                raise DataError(f"sample {s.sample_id}: unknown category {s.category!r}")
            cats.append(categories.index(s.category))
            bar.update()
    if not samples:
        empty = torch.zeros(0, 3, height, width)
        return Batch(
            empty,
            empty,
            empty,
            torch.zeros(0, 1, height, width),
            torch.zeros(0, dtype=torch.int64),
            [],
        )
    return Batch(
        torch.stack(persons),
        torch.stack(garments),
        torch.stack(targets),
        torch.stack(masks),
        torch.tensor(cats, dtype=torch.int64),
        [s.sample_id for s in samples],
    )
