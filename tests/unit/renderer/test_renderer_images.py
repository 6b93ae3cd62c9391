"""Safe image decoding: every kind of bad input becomes an ImageError with the right status."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tryon_renderer.errors import ImageError
from tryon_renderer.images import ImageLimits, decode_image, encode_image, sniff_format, to_tensor

pytestmark = pytest.mark.unit
LIMITS = ImageLimits(max_bytes=1_000_000, max_side=2000, max_pixels=2_000_000)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims the given size, with a tiny IDAT (as bombs and lies do)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_valid_formats_decode_to_rgb(fmt: str) -> None:
    img = decode_image(_encode(Image.new("RGB", (40, 30), (10, 200, 30)), fmt), LIMITS)
    assert img.mode == "RGB" and img.size == (40, 30)


def test_alpha_is_flattened_onto_white() -> None:
    data = _encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0)), "PNG")
    assert decode_image(data, LIMITS).getpixel((5, 5)) == (255, 255, 255)


def test_non_image_bytes_are_415() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"%PDF-1.4 definitely not an image", LIMITS)
    assert info.value.status == 415


def test_zero_size_is_400() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"", LIMITS)
    assert (info.value.status, info.value.code) == (400, "empty_image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_400(fmt: str) -> None:
    noisy = Image.effect_noise((120, 120), 60).convert("RGB")
    data = _encode(noisy, fmt)
    with pytest.raises(ImageError) as info:
        decode_image(data[: len(data) // 2], LIMITS)
    assert (info.value.status, info.value.code) == (400, "corrupt_image")


def test_too_many_bytes_is_413() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * LIMITS.max_bytes, LIMITS)
    assert info.value.status == 413


def test_enormous_dimensions_are_413_without_decoding() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(_png_header_only(50_000, 100), LIMITS)
    assert (info.value.status, info.value.code) == (413, "image_dimensions_too_large")


def test_pillow_scale_bomb_header_is_413() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(
            _png_header_only(60_000, 60_000), ImageLimits(max_side=100_000, max_pixels=10**10)
        )
    assert info.value.status == 413


def test_decompression_bomb_is_rejected_quickly() -> None:
    """A few KB that would expand to 9 Mpx is refused from its header, before decoding."""
    bomb = _encode(Image.new("L", (3000, 3000), 0), "PNG")
    assert len(bomb) < 50_000
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        decode_image(bomb, ImageLimits(max_bytes=1_000_000, max_side=4000, max_pixels=2_000_000))
    assert info.value.status == 413
    assert time.perf_counter() - start < 1.0


def test_tiny_image_is_400() -> None:
    with pytest.raises(ImageError) as info:
        decode_image(_encode(Image.new("RGB", (2, 2)), "PNG"), LIMITS)
    assert info.value.code == "image_too_small"


def test_tensor_round_trip_keeps_pixels() -> None:
    img = Image.new("RGB", (48, 64), (0, 128, 255))
    tensor = to_tensor(img, 64, 48)
    assert tensor.shape == (3, 64, 48)
    assert tensor.min() >= -1 and tensor.max() <= 1
    back = Image.open(io.BytesIO(encode_image(tensor)))
    assert back.getpixel((10, 10)) == (0, 128, 255)


def test_sniff_ignores_claimed_type() -> None:
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"GIF89a") is None


def _decode_or_image_error(data: bytes) -> None:
    """The property: decoding returns an RGB image or raises ImageError, nothing else."""
    try:
        img = decode_image(data, LIMITS)
    except ImageError as err:
        assert 400 <= err.status < 500
        return
    assert img.mode == "RGB"
    assert to_tensor(img, 16, 16).isfinite().all()


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _decode_or_image_error(data)


_SEEDS = {
    fmt: _encode(Image.effect_noise((24, 24), 40).convert("RGB"), fmt)
    for fmt in ("PNG", "JPEG", "WEBP")
}


@FUZZ
@given(
    st.sampled_from(sorted(_SEEDS)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
    st.integers(0, 10_000),
)
def test_fuzz_mutated_valid_images(fmt: str, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(_SEEDS[fmt])
    for pos, value in flips:
        data[pos % len(data)] = value
    _decode_or_image_error(bytes(data[: max(1, len(data) - cut % len(data))]))


def test_torch_default_dtype_is_float32() -> None:
    assert to_tensor(Image.new("RGB", (8, 8)), 8, 8).dtype == torch.float32
