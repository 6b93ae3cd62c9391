"""Try-on datasets: the on-disk layouts, a seeded synthetic generator, hashing and tensors.

- `layout`: `Sample`, `Dataset`, the ``tryon`` and ``vitonhd`` loaders, `open_dataset`;
- `synthetic`: `make_synthetic` / `render_sample`, `SyntheticSpec` (``tryon-model data make``);
- `hashing`: the dataset content hash recorded with every run and version;
- `tensors`: `Batch` and `load_batch`, images as contract tensors.
"""

from .hashing import combine_hash_lines, dataset_hash, file_sha256, sample_hash_line
from .layout import (
    CATEGORIES,
    DATASET_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GENERATOR_NAME,
    INDEX_COLUMNS,
    INDEX_FILE,
    SPLITS,
    VITONHD_GARMENT_LABELS,
    DataError,
    Dataset,
    Sample,
    detect_format,
    load_tryon,
    load_vitonhd,
    open_dataset,
)
from .synthetic import SyntheticSpec, make_synthetic, render_sample, split_counts_for
from .tensors import Batch, image_to_tensor, load_batch, load_mask, tensor_to_image

__all__ = [
    "CATEGORIES",
    "DATASET_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GENERATOR_NAME",
    "INDEX_COLUMNS",
    "INDEX_FILE",
    "SPLITS",
    "VITONHD_GARMENT_LABELS",
    "Batch",
    "DataError",
    "Dataset",
    "Sample",
    "SyntheticSpec",
    "combine_hash_lines",
    "dataset_hash",
    "detect_format",
    "file_sha256",
    "image_to_tensor",
    "load_batch",
    "load_mask",
    "load_tryon",
    "load_vitonhd",
    "make_synthetic",
    "open_dataset",
    "render_sample",
    "sample_hash_line",
    "split_counts_for",
    "tensor_to_image",
]
