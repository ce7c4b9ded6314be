"""Decoding the user's uploaded images into a batch like the datasets' (rgdiff_core.data).

`load_images(files, size, channels)` returns (N, channels, size, size) float32 in [-1, 1]:
every file is decoded with PIL (first frame of an animation, EXIF orientation applied), brought
to [0, 1] (8-bit / 255, 16-bit / 65535, float images in [0, 1] as they are, any other by its
own min and max), alpha composited on black (colour * alpha), converted to grey with ITU-R
601-2 luma (0.299 R + 0.587 G + 0.114 B) or to RGB, centre-cropped to a square, resized
bilinearly, then mapped affinely to [-1, 1]. Images over MAX_IMAGE_PIXELS are refused before
decoding; an unreadable, truncated or too large file raises ValueError naming files[i]."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

MAX_IMAGE_PIXELS = 50_000_000  # uploads above this are refused before decoding


def _check_size(size: object) -> int:
    ok = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
    if not ok or not 1 <= size <= 1024:
        raise ValueError(f"size must be an integer in 1..1024, got {size!r}")
    return int(size)


def _read_bytes(item: object, index: int) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if hasattr(item, "getvalue"):  # BytesIO, Streamlit UploadedFile
        return bytes(item.getvalue())
    if hasattr(item, "read"):
        if getattr(item, "seekable", lambda: False)():
            item.seek(0)
        data = item.read()
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
    raise ValueError(
        f"files[{index}] must be bytes or a binary file-like object, got {type(item).__name__}"
    )


def _scaled_float(img: Image.Image) -> Image.Image:
    """Modes I;16*, I, F -> mode F with values in [0, 1]."""
    arr = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        arr /= 65535.0
    elif img.mode == "I" and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        arr /= 65535.0  # 16-bit data in a 32-bit container (PNG, TIFF)
    elif not (arr.size and arr.min() >= 0 and arr.max() <= 1):
        finite = arr[np.isfinite(arr)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
        with np.errstate(invalid="ignore"):  # NaN / Inf pixels are mapped below
            arr = (arr - lo) / (hi - lo) if hi > lo else np.full_like(arr, 0.5)
        arr = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
    return Image.fromarray(arr.clip(0, 1).astype(np.float32))  # mode F


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Any PIL mode -> one of L, LA, RGB, RGBA, F (F scaled to [0, 1])."""
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if img.mode.startswith(("I", "F")):
        return _scaled_float(img)
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA"):
        return img.convert("RGBA")  # honours palette transparency
    if img.mode in ("La", "RGBa"):
        return img.convert(img.mode.upper())
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _exif_upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block is no reason to refuse the pixels
        return img


def _decode(data: bytes, index: int, size: int, channels: int) -> Tensor:
    """One encoded image -> (channels, size, size) float32 in [0, 1]."""
    where = f"files[{index}]"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{where}: image too large ({exc})") from None
    except UnidentifiedImageError:
        raise ValueError(f"{where}: not a recognised image file") from None
    except Exception as exc:
        raise ValueError(f"{where}: could not read image header ({exc})") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{where}: image too large ({w}x{h} pixels; the limit is "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
        )
    if w < 1 or h < 1:
        raise ValueError(f"{where}: image has no pixels ({w}x{h})")
    try:
        img.seek(0)  # first frame of an animation
        img.draft(None, (size, size))  # JPEG: decode at a reduced scale that still covers size
        img.load()
        img = _normalise_mode(_exif_upright(img))
        w, h = img.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        # Crop first: resize(box=...) would let the filter reach outside the square.
        img = img.crop(box).resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(img).astype(np.float32)
    except Exception as exc:
        raise ValueError(f"{where}: could not decode image, truncated or corrupt ({exc})") from None
    if img.mode != "F":
        arr = arr / 255.0
    arr = arr.reshape(size, size, -1)
    if img.mode in ("LA", "RGBA"):  # composite on black: colour * alpha
        arr = arr[..., :-1] * arr[..., -1:]
    if channels == 1 and arr.shape[-1] == 3:
        arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]  # ITU-R 601-2
    elif channels == 3 and arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def load_images(
    files: Sequence[bytes | BinaryIO] | bytes | BinaryIO, size: int, channels: int = 1
) -> Tensor:
    """Decode uploaded images to (N, channels, size, size) float32 in [-1, 1].

    Each item is bytes or a binary file-like object (e.g. Streamlit's UploadedFile). Images are
    decoded with PIL (first frame of animations, EXIF orientation applied), converted to grey
    (ITU-R 601-2 luma) or RGB, alpha composited on black, 16-bit and float modes scaled to
    [0, 1], centre-cropped to a square and resized (bilinear, antialiased). Unreadable,
    truncated or over-large (> 50 megapixel) files raise ValueError naming files[i].
    """
    _check_size(size)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if isinstance(files, (bytes, bytearray, memoryview)) or hasattr(files, "read"):
        files = [files]
    if not isinstance(files, Sequence) or len(files) == 0:
        raise ValueError("files must be a non-empty sequence of images")
    x = torch.stack([_decode(_read_bytes(f, i), i, size, channels) for i, f in enumerate(files)])
    return (x * 2.0 - 1.0).clamp_(-1.0, 1.0)
