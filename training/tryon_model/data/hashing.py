"""Content hash of a dataset: every sample's id, split, category and file bytes."""

from __future__ import annotations

import hashlib

from tryon_renderer.hashing import sha256_file

from ..progress import Progress
from .layout import Dataset, Sample

# One streaming SHA-256 for model artifacts and datasets (kept under its old name here).
file_sha256 = sha256_file


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
