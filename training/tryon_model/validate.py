"""Dataset validation: schema and sanity checks with a readable report.

Every problem names the offending file(s). Errors fail validation (non-zero exit in the CLI);
warnings are reported but do not. Checks:

- schema: known split and category, unique sample ids, at least one train sample and at least one
  val or test sample;
- files: present, decodable, RGB-convertible, person/garment/target at the declared size (tryon
  layout) or at least person and target the same size (VITON-HD);
- masks: binary (only 0 and 255, or 0 and 1), same size as the target, not empty (warning);
  VITON-HD label maps must contain the garment labels (warning otherwise);
- pairing: every file under ``<split>/{person,garment,target,mask}/`` belongs to an index row;
- duplicates and leakage: the same (person, garment) pair twice in a split is a duplicate; the same
  person photo or pair in two splits is split leakage;
- sanity: a target identical to its person input teaches nothing (warning), blank images (warning).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .data import SPLITS, Dataset, Sample, combine_hash_lines, sample_hash_line
from .progress import Progress

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    severity: str
    code: str
    path: str
    message: str


@dataclass
class Report:
    root: str
    format: str
    counts: dict[str, int]
    issues: list[Issue] = field(default_factory=list)
    dataset_hash: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, severity: str, code: str, path: str, message: str) -> None:
        self.issues.append(Issue(severity, code, path, message))

    def codes(self) -> set[str]:
        return {i.code for i in self.issues}

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "format": self.format,
            "counts": self.counts,
            "ok": self.ok,
            "dataset_hash": self.dataset_hash,
            "notes": self.notes,
            "issues": [asdict(i) for i in self.issues],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render(self, max_issues: int = 200) -> str:
        total = sum(self.counts.values())
        split_text = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [f"dataset {self.root} ({self.format}, {total} samples: {split_text})"]
        lines += [f"note: {n}" for n in self.notes]
        if self.dataset_hash:
            lines.append(f"hash {self.dataset_hash}")
        ordered = self.errors + self.warnings
        if ordered:
            width = max(len(i.code) for i in ordered)
            for issue in ordered[:max_issues]:
                lines.append(
                    f"{issue.severity.upper():<7} {issue.code:<{width}}  {issue.path}  "
                    f"{issue.message}"
                )
            if len(ordered) > max_issues:
                lines.append(f"... and {len(ordered) - max_issues} more")
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s): {verdict}")
        return "\n".join(lines)


@dataclass
class _Decoded:
    sha256: str
    size: tuple[int, int]  # (width, height)
    array: np.ndarray


def _decode(path: Path, as_mask: bool) -> _Decoded:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            size = img.size
            if as_mask:
                arr = np.asarray(img)
                if arr.ndim == 3:
                    arr = arr[..., 0]
            else:
                arr = np.asarray(img.convert("RGB"))
    return _Decoded(digest, size, arr)


@dataclass
class _Scan:
    """What the checks carry from one sample to the next."""

    seen_ids: dict[str, Sample] = field(default_factory=dict)
    pair_owner: dict[tuple[str, str], Sample] = field(default_factory=dict)
    person_owner: dict[str, Sample] = field(default_factory=dict)
    hash_lines: list[str] = field(default_factory=list)
    hash_complete: bool = True  # every file decoded, so the content hash can be computed
    referenced: set[Path] = field(default_factory=set)


def validate_dataset(ds: Dataset, show_progress: bool = True) -> Report:
    """Run every check on `ds` and return the report (never raises for bad content)."""
    report = Report(
        root=str(ds.root), format=ds.format, counts=ds.split_counts(), notes=list(ds.notes)
    )
    scan = _Scan()
    _check_splits(ds, report)
    with Progress(len(ds.samples), "validating", enabled=None if show_progress else False) as bar:
        for sample in ds.samples:
            bar.update()
            _check_record(ds, sample, scan, report)
            decoded = _decode_files(ds, sample, scan, report)
            _check_sizes(ds, sample, decoded, report)
            _check_mask(ds, sample, decoded, report)
            _check_sanity(ds, sample, decoded, report)
            _check_duplicates(ds, sample, decoded, scan, report)
    if ds.format == "tryon":
        _check_orphans(ds, scan.referenced, report)
    if scan.hash_complete:
        report.dataset_hash = combine_hash_lines(scan.hash_lines)
    return report


def _check_splits(ds: Dataset, report: Report) -> None:
    """Schema level: something to train on and something to evaluate on."""
    if not ds.split("train"):
        report.add(ERROR, "empty_split", str(ds.root), "no samples in the train split")
    if not ds.split("val") and not ds.split("test"):
        report.add(ERROR, "empty_split", str(ds.root), "no samples in val or test to evaluate on")


def _check_record(ds: Dataset, sample: Sample, scan: _Scan, report: Report) -> None:
    """The index row itself: unique id, known split and category, a mask where one is required."""
    rel, sid = ds.rel, sample.sample_id
    if sid in scan.seen_ids:
        report.add(ERROR, "duplicate_id", rel(sample.person), f"sample id {sid!r} is used twice")
    scan.seen_ids[sid] = sample
    if sample.split not in SPLITS:
        report.add(
            ERROR,
            "unknown_split",
            rel(sample.person),
            f"sample {sid}: split {sample.split!r} is not one of {list(SPLITS)}",
        )
    if sample.category not in ds.categories:
        report.add(
            ERROR,
            "unknown_category",
            rel(sample.person),
            f"sample {sid}: category {sample.category!r} is not one of {list(ds.categories)}",
        )
    if ds.format == "tryon" and sample.mask is None:
        report.add(ERROR, "missing_mask", rel(sample.target), f"sample {sid}: no mask")


def _decode_files(ds: Dataset, sample: Sample, scan: _Scan, report: Report) -> dict[str, _Decoded]:
    """Decode the sample's files (reporting missing and broken ones) and record its hash line."""
    sid = sample.sample_id
    decoded: dict[str, _Decoded] = {}
    for kind, path in sample.files():
        scan.referenced.add(path.resolve())
        if not path.is_file():
            report.add(ERROR, "missing_file", ds.rel(path), f"sample {sid}: {kind} file is missing")
            continue
        try:
            decoded[kind] = _decode(path, as_mask=kind == "mask")
        except Exception as err:
            report.add(
                ERROR,
                "undecodable",
                ds.rel(path),
                f"sample {sid}: {kind} image cannot be decoded ({err})",
            )
    if len(decoded) != len(sample.files()):
        scan.hash_complete = False
    else:
        scan.hash_lines.append(sample_hash_line(sample, {k: d.sha256 for k, d in decoded.items()}))
    return decoded


def _check_duplicates(
    ds: Dataset, sample: Sample, decoded: dict[str, _Decoded], scan: _Scan, report: Report
) -> None:
    """The same (person, garment) pair twice, or the same person photo in two splits."""
    if "person" not in decoded or "garment" not in decoded:
        return
    rel, sid = ds.rel, sample.sample_id
    key = (decoded["person"].sha256, decoded["garment"].sha256)
    other = scan.pair_owner.get(key)
    if other is not None:
        code = "duplicate_sample" if other.split == sample.split else "split_leakage"
        report.add(
            ERROR,
            code,
            rel(sample.person),
            f"sample {sid} ({sample.split}) has the same person and garment "
            f"images as sample {other.sample_id} ({other.split}): "
            f"{rel(other.person)}",
        )
        return
    scan.pair_owner[key] = sample
    owner = scan.person_owner.get(key[0])
    if owner is not None and owner.split != sample.split:
        report.add(
            ERROR,
            "split_leakage",
            rel(sample.person),
            f"sample {sid} ({sample.split}) uses the same person photo as "
            f"sample {owner.sample_id} ({owner.split}): {rel(owner.person)}",
        )
    scan.person_owner.setdefault(key[0], sample)


def _check_sizes(ds: Dataset, s: Sample, decoded: dict[str, _Decoded], report: Report) -> None:
    if ds.height is not None and ds.width is not None:
        want = (ds.width, ds.height)
        for kind in ("person", "garment", "target", "mask"):
            d = decoded.get(kind)
            if d is not None and d.size != want:
                path = dict(s.files())[kind]
                report.add(
                    ERROR,
                    "wrong_size",
                    ds.rel(path),
                    f"sample {s.sample_id}: {kind} is {d.size[0]}x{d.size[1]} (WxH), "
                    f"dataset declares {want[0]}x{want[1]}",
                )
        return
    target = decoded.get("target")
    if target is None:
        return
    for kind in ("person", "mask"):
        d = decoded.get(kind)
        if d is not None and d.size != target.size:
            path = dict(s.files())[kind]
            report.add(
                ERROR,
                "size_mismatch",
                ds.rel(path),
                f"sample {s.sample_id}: {kind} is {d.size} but target is {target.size}",
            )


def _check_mask(ds: Dataset, s: Sample, decoded: dict[str, _Decoded], report: Report) -> None:
    d = decoded.get("mask")
    if d is None or s.mask is None:
        return
    values = np.unique(d.array)
    path = ds.rel(s.mask)
    if s.mask_labels is not None:
        if not np.isin(np.array(s.mask_labels), values).any():
            report.add(
                WARNING,
                "empty_mask",
                path,
                f"sample {s.sample_id}: label map has none of the garment labels "
                f"{list(s.mask_labels)}",
            )
        return
    allowed = {0, 255} if values.max(initial=0) > 1 else {0, 1}
    extra = sorted(set(values.tolist()) - allowed)
    if extra:
        shown = ", ".join(str(v) for v in extra[:5]) + (" ..." if len(extra) > 5 else "")
        report.add(
            ERROR,
            "mask_not_binary",
            path,
            f"sample {s.sample_id}: mask has values other than 0/255 ({shown})",
        )
    elif values.max(initial=0) == 0:
        report.add(WARNING, "empty_mask", path, f"sample {s.sample_id}: mask is all zero")


def _check_sanity(ds: Dataset, s: Sample, decoded: dict[str, _Decoded], report: Report) -> None:
    for kind in ("person", "garment", "target"):
        d = decoded.get(kind)
        if d is not None and d.array.size and int(d.array.max()) == int(d.array.min()):
            report.add(
                WARNING,
                "blank_image",
                ds.rel(dict(s.files())[kind]),
                f"sample {s.sample_id}: {kind} image is a single flat colour",
            )
    p, t = decoded.get("person"), decoded.get("target")
    if p is not None and t is not None and s.person != s.target and p.sha256 == t.sha256:
        report.add(
            WARNING,
            "target_equals_person",
            ds.rel(s.target),
            f"sample {s.sample_id}: target is identical to the person input",
        )


def _check_orphans(ds: Dataset, referenced: set[Path], report: Report) -> None:
    for split in SPLITS:
        for kind in ("person", "garment", "target", "mask"):
            folder = ds.root / split / kind
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.resolve() not in referenced:
                    report.add(
                        ERROR,
                        "unpaired_file",
                        ds.rel(path),
                        f"{kind} file is not referenced by any sample in index.csv",
                    )


def counts_by_code(report: Report) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for issue in report.issues:
        out[issue.code] += 1
    return dict(out)
