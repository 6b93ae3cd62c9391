"""Safe image decoding and encoding for untrusted uploads.

Why so defensive: images come from the internet. Before any pixel is decoded we bound the byte
size, sniff the real format from magic bytes (the client's content type is not trusted), read
dimensions from the header and reject huge or bomb-like images; decoding errors (truncated or
corrupt files) become `ImageError` (HTTP 400/413/415), never an unhandled exception.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import ImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class ImageLimits:
    """Bounds applied to every decoded image."""

    max_bytes: int = 10 * 1024 * 1024
    max_side: int = 4096
    max_pixels: int = 4096 * 4096
    min_side: int = 8


def sniff_format(data: bytes) -> str | None:
    """Identify JPEG/PNG/WebP from magic bytes; None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _check_bytes(data: bytes, limits: ImageLimits) -> str:
    if len(data) == 0:
        raise ImageError("image is empty (0 bytes)", code="empty_image")
    if len(data) > limits.max_bytes:
        raise ImageError(
            f"image is {len(data)} bytes, limit is {limits.max_bytes}",
            status=413,
            code="image_too_large",
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(
            "unsupported or unrecognised image format; send JPEG, PNG or WebP",
            status=415,
            code="unsupported_image_type",
        )
    return fmt


def _check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    if width < limits.min_side or height < limits.min_side:
        raise ImageError(
            f"image is {width}x{height}, minimum side is {limits.min_side}", code="image_too_small"
        )
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise ImageError(
            f"image is {width}x{height}, limits are {limits.max_side} per side and "
            f"{limits.max_pixels} pixels",
            status=413,
            code="image_dimensions_too_large",
        )


def _open_checked(data: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    """Open lazily (header only), verify format and size, then decode fully."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data), formats=[fmt])
        _check_dimensions(img.width, img.height, limits)
        img.load()
    return img


def decode_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """Decode untrusted bytes to an RGB image or raise ImageError; never anything else."""
    fmt = _check_bytes(data, limits)
    try:
        img = _open_checked(data, fmt, limits)
        img = ImageOps.exif_transpose(img) or img
        _check_dimensions(img.width, img.height, limits)
        return _to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"image rejected as a decompression bomb: {err}", status=413, code="decompression_bomb"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, TypeError, IndexError, KeyError) as err:
        # Pillow reports truncated/corrupt data with a mix of these exception types.
        raise ImageError(f"image could not be decoded: {err}", code="corrupt_image") from None
    except (MemoryError, OverflowError, RuntimeError, ZeroDivisionError, AttributeError) as err:
        raise ImageError(f"image could not be decoded: {err!r}", code="corrupt_image") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten alpha onto white and convert any mode to RGB."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def to_tensor(img: Image.Image, height: int, width: int) -> torch.Tensor:
    """Resize to the contract resolution and normalise to [-1, 1], shape (3, H, W) float32."""
    resized = img.resize((width, height), Image.Resampling.BILINEAR)
    arr = np.asarray(resized, dtype=np.uint8)
    tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()
    return tensor.div_(127.5).sub_(1.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8; values are clamped, NaN must be checked before."""
    arr = ((tensor.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return arr.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def encode_image(tensor: torch.Tensor, fmt: str = "PNG", quality: int = 90) -> bytes:
    """Encode a model output tensor as PNG/JPEG/WebP bytes."""
    img = Image.fromarray(to_uint8(tensor), mode="RGB")
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format=fmt, quality=quality)
    return buf.getvalue()
