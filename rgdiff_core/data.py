"""Datasets: shipped offline sets and generated ones; `load_images` (rgdiff_core.images) decodes
the user's uploaded images.

Every loader returns a float32 batch x of shape (N, C, H, W) with H = W = size, values in
[-1, 1] (Gaussian random fields are not clipped and exceed that range now and then). Nothing is
downloaded: the shipped files live in ``assets/`` (provenance and licences in assets/README.md;
``scripts/build_assets.py`` rebuilds them), the rest is generated from fixed seeds.

Datasets (``DATASETS``; ``load_dataset(name, size, split, labels=False)``):

- ``digits``: UCI 8x8 handwritten digits (CC BY 4.0), 0..16 mapped affinely to [-1, 1], resized
  to ``size`` with bilinear interpolation. Split: the fixed stratified 15 % ``is_test`` mask
  stored in assets/digits.npz (no image occurs in both splits). Labelled 0..9.
- ``glyphs``: handwriting-like digits (rgdiff_core.glyphs): Pillow's built-in font under random
  affine maps, stroke widths and elastic warps, 8-bit levels q mapped to q / 127.5 - 1. 60 000
  train (seed 0) and 10 000 test (seed 1) images, labels balanced 0..9; generated once per size
  and split (9-12 s of CPU, 13-25 s wall, for the 60 000 at 32 px on this project's shared 2-core
  machine), then cached on disk (0.5 s to load). Labelled 0..9.
- ``patches``: grey patches of five CC0 / public-domain photographs (assets/patches/*.png, long
  side 256 px). Patches are always cut at 64 x 64 px, randomly flipped left-right, then reduced
  to ``size`` with antialiased bilinear interpolation, so every size shows the same content.
  Test patches come only from the right-most 80 columns of each photograph, train patches only
  from the columns left of them, so the splits share no pixel. 0..255 maps to [-1, 1] (one
  affine map for the whole dataset, not per patch).
- ``fields``: Gaussian random fields, below; train seed 0, test seed 1.
- ``shapes``: 1-3 filled circles, axis-aligned or rotated rectangles and triangles with random
  positions, sizes and grey levels on a random background. Geometry is drawn in continuous
  [0, 1]^2 coordinates from a fixed seed per split and rasterised without anti-aliasing (inside
  test at pixel centres), so the edges are sharp at every size.

Gaussian random field: with k = (k_y, k_x) integer frequencies in cycles per image
(``fftfreq(size) * size``) the normalised power spectrum is

    P(k) = A (|k|^2 + m^2)^(-p/2),   A chosen so that mean_k P(k) = scale^2 (scale = 0.5),

and a field is x = Re ifft2(fft2(w) * sqrt(P)) for real white noise w ~ N(0, I). Because sqrt(P)
is real and even in k, x is exactly real and periodic, with zero mean and the circulant
covariance Cov(x_a, x_b) = c((a - b) mod size), c = ifft2(P); so Var(x_a) = mean_k P = scale^2.
Also E |fft2(x, norm="ortho")(k)|^2 = P(k), which ``metrics.rapsd`` measures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from . import glyphs
from .glyphs import _check_int  # one integer check for both modules
from .images import load_images as load_images  # decoded there; public here as well

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
FIELD_STD = 0.5
FIELD_EXPONENT, FIELD_MASS = 3.0, 1.0  # the "fields" dataset's spectrum (k^2 + m^2)^(-p/2)
SPLITS = ("train", "test")
SPLIT_SEEDS = {"train": 0, "test": 1}
PATCH_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket")
PATCH_CUT = 64  # patches are cut at this size from the 256 px photographs
PATCH_TEST_COLUMNS = 80  # right-most columns of each photograph reserved for test patches
GLYPHS_N = {"train": 60_000, "test": 10_000}


# ---------------------------------------------------------------- validation helpers


def _check_field_args(size: int, exponent: float, mass: float, max_size: int = 128) -> None:
    _check_int("size", size, 4, max_size)
    if not (_is_number(exponent) and math.isfinite(exponent) and exponent >= 0):
        raise ValueError(f"exponent must be a finite number >= 0, got {exponent!r}")
    if not (_is_number(mass) and math.isfinite(mass) and mass > 0):
        raise ValueError(f"mass must be a finite number > 0, got {mass!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_scale(scale: float | None) -> float:
    scale = FIELD_STD if scale is None else scale
    if not (_is_number(scale) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0 (pixel std), got {scale!r}")
    return float(scale)


def _resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of (N, C, h, w) to size x size, antialiased when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    shrink = size < x.shape[-1]
    return F.interpolate(
        x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


# ---------------------------------------------------------------- Gaussian random fields


def gaussian_field_spectrum(
    size: int, exponent: float = 3.0, mass: float = 1.0, scale: float | None = None
) -> Tensor:
    """Normalised power spectrum P(k) (size, size), float64, FFT layout; mean_k P = scale^2."""
    _check_field_args(size, exponent, mass)
    scale = _check_scale(scale)
    k = torch.fft.fftfreq(size, dtype=torch.float64) * size
    k_sq = k[:, None] ** 2 + k[None, :] ** 2
    power = (k_sq + mass**2) ** (-exponent / 2)
    return power * (scale**2 / power.mean())


def gaussian_field_covariance(
    size: int, exponent: float = 3.0, mass: float = 1.0, scale: float | None = None
) -> Tensor:
    """Exact pixel covariance (D, D), D = size^2, float64, of ``gaussian_field``.

    Row-major pixel order (as ``x.reshape(n, -1)``). Limited to size <= 64 (D <= 4096).
    """
    _check_field_args(size, exponent, mass, max_size=64)
    c = torch.fft.ifft2(gaussian_field_spectrum(size, exponent, mass, scale)).real
    i = torch.arange(size)
    dy = (i[:, None, None, None] - i[None, None, :, None]) % size
    dx = (i[None, :, None, None] - i[None, None, None, :]) % size
    cov = c[dy, dx].reshape(size * size, size * size)
    return (cov + cov.T) / 2  # symmetric to the last bit


def gaussian_field(
    n: int,
    size: int,
    exponent: float = 3.0,
    mass: float = 1.0,
    generator: torch.Generator | None = None,
    scale: float | None = None,
) -> Tensor:
    """n periodic Gaussian random fields (n, 1, size, size), float32, pixel std ``scale``.

    Drawn on the generator's device (CPU when None); see the module docstring for the maths.
    """
    _check_int("n", n, 1)
    spectrum = gaussian_field_spectrum(size, exponent, mass, scale)
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(n, 1, size, size, generator=generator, device=device, dtype=torch.float64)
    field = torch.fft.ifft2(torch.fft.fft2(noise) * spectrum.to(device).sqrt()).real
    return field.float()


# ---------------------------------------------------------------- dataset builders


def _asset(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"missing asset {path}; rebuild with "
            "`python scripts/build_assets.py` (see assets/README.md)"
        )
    return path


def _digits(size: int, split: str) -> tuple[Tensor, Tensor]:
    with np.load(_asset(ASSETS_DIR / "digits.npz")) as f:
        images, labels, is_test = f["images"], f["labels"], f["is_test"]
    keep = is_test if split == "test" else ~is_test
    x = torch.from_numpy(images[keep].astype(np.float32))[:, None] / 8.0 - 1.0
    y = torch.from_numpy(labels[keep].astype(np.int64))
    return _resize(x, size).clamp_(-1.0, 1.0), y


def _glyphs(size: int, split: str) -> tuple[Tensor, Tensor]:
    """uint8 levels (N, 1, size, size) and labels; load_dataset maps q to q / 127.5 - 1 for the
    rows asked for, so the cache holds a quarter of the float32 bytes."""
    return glyphs.load_glyphs(size, SPLIT_SEEDS[split], GLYPHS_N[split])


def _patches(size: int, split: str, n_train: int = 3000, n_test: int = 500) -> Tensor:
    images = []
    for name in PATCH_IMAGES:
        with Image.open(_asset(ASSETS_DIR / "patches" / f"{name}.png")) as img:
            images.append(np.asarray(img.convert("L")))
    # Allowed top-left corners per photograph; the column ranges of the splits never overlap.
    lo_x = [im.shape[1] - PATCH_TEST_COLUMNS if split == "test" else 0 for im in images]
    hi_x = [
        im.shape[1] - (PATCH_CUT if split == "test" else PATCH_TEST_COLUMNS + PATCH_CUT)
        for im in images
    ]
    hi_y = [im.shape[0] - PATCH_CUT for im in images]
    count = np.array(
        [(hx - lx + 1) * (hy + 1) for lx, hx, hy in zip(lo_x, hi_x, hi_y, strict=True)]
    )
    n = n_test if split == "test" else n_train
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    which = rng.choice(len(images), size=n, p=count / count.sum())
    ys = rng.integers(0, np.array(hi_y)[which] + 1)
    xs = rng.integers(np.array(lo_x)[which], np.array(hi_x)[which] + 1)
    flip = rng.random(n) < 0.5
    cut = np.stack(
        [
            images[i][y : y + PATCH_CUT, x : x + PATCH_CUT]
            for i, y, x in zip(which, ys, xs, strict=True)
        ]
    )
    cut[flip] = cut[flip, :, ::-1]
    x = torch.from_numpy(cut.astype(np.float32))[:, None] / 127.5 - 1.0
    return _resize(x, size).clamp_(-1.0, 1.0)


def _fields(
    size: int, split: str, exponent: float = FIELD_EXPONENT, mass: float = FIELD_MASS
) -> Tensor:
    n = 500 if split == "test" else 2000
    gen = torch.Generator().manual_seed(SPLIT_SEEDS[split])
    return gaussian_field(n, size, exponent, mass, generator=gen)


def _shape_mask(
    kind: int,
    centre: np.ndarray,
    half: np.ndarray,
    angle: np.ndarray,
    tri: np.ndarray,
    px: np.ndarray,
) -> np.ndarray:
    """Inside masks (M, H, W) of M shapes of one kind, tested at pixel centres px (2, H, W)."""
    dy = px[0][None] - centre[:, 0, None, None]
    dx = px[1][None] - centre[:, 1, None, None]
    if kind == 0:  # circle
        return dx**2 + dy**2 <= half[:, 0, None, None] ** 2
    if kind in (1, 2):  # rectangle, rotated by angle (0 for the axis-aligned kind)
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        return (np.abs(u) <= half[:, 0, None, None]) & (np.abs(v) <= half[:, 1, None, None])
    # Triangle with vertices at sorted angles tri (counter-clockwise): left of all three edges.
    vx, vy = 1.2 * half[:, :1] * np.cos(tri), 1.2 * half[:, :1] * np.sin(tri)
    inside = np.ones(dx.shape, dtype=bool)
    for j in range(3):
        ex, ey = vx[:, (j + 1) % 3] - vx[:, j], vy[:, (j + 1) % 3] - vy[:, j]
        rx, ry = dx - vx[:, j, None, None], dy - vy[:, j, None, None]
        inside &= ex[:, None, None] * ry - ey[:, None, None] * rx >= 0
    return inside


def _shapes(size: int, split: str) -> Tensor:
    n, slots = (500 if split == "test" else 2000), 3
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    # All parameters are drawn before rasterising, so they do not depend on size.
    n_shapes = rng.integers(1, slots + 1, n)
    kind = rng.integers(0, 4, (n, slots))  # circle, axis rect, rotated rect, triangle
    centre = rng.uniform(0.15, 0.85, (n, slots, 2))
    half = rng.uniform(0.1, 0.3, (n, slots, 2))
    angle = np.where(kind == 1, 0.0, rng.uniform(0, np.pi, (n, slots)))
    tri = np.sort(
        rng.uniform(0, 2 * np.pi, (n, slots, 1))
        + np.arange(3) * 2 * np.pi / 3
        + rng.uniform(-0.5, 0.5, (n, slots, 3)),
        -1,
    )
    background = rng.uniform(-0.8, 0.8, n)
    delta = rng.uniform(0.4, 1.0, (n, slots)) * rng.choice([-1.0, 1.0], (n, slots))
    # Grey level at least 0.4 away from the background, flipped to the side that stays in range.
    grey = background[:, None] + delta
    grey = np.where(np.abs(grey) > 1, background[:, None] - delta, grey).astype(np.float32)
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    px = np.stack(np.meshgrid(centres, centres, indexing="ij"))
    params = [a.astype(np.float32) for a in (centre, half, angle, tri)]
    out = np.repeat(background.astype(np.float32)[:, None, None], size * size, -1)
    out = out.reshape(n, size, size)
    for s in range(slots):  # later shapes are painted over earlier ones
        for k in range(4):
            idx = np.flatnonzero((kind[:, s] == k) & (s < n_shapes))
            mask = _shape_mask(k, *(a[idx, s] for a in params), px)
            out[idx] = np.where(mask, grey[idx, s, None, None], out[idx])
    return torch.from_numpy(out)[:, None]


# ---------------------------------------------------------------- registry and loader


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset name means. ``build(size, split, **options)`` returns the whole split: x,
    or (x, labels) when ``labelled``; x float32 in [-1, 1], or uint8 levels q (x = q/127.5 - 1).
    """

    description: str
    source: str  # provenance and licence
    channels: int
    n_train: int
    n_test: int
    gaussian: bool  # exact Gaussian denoiser applies (known covariance)
    options: tuple[str, ...]  # extra keyword options accepted by load_dataset
    build: Callable[..., Tensor | tuple[Tensor, Tensor]]
    labelled: bool = False  # class labels 0..9 with load_dataset(..., labels=True)


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        description="8×8 handwritten digits, scaled up",
        source="UCI Optical Recognition of Handwritten Digits (via scikit-learn), CC BY 4.0",
        channels=1, n_train=1528, n_test=269, gaussian=False, options=(), build=_digits,
        labelled=True,
    ),
    "glyphs": DatasetInfo(
        description="handwriting-like digits rendered with Pillow's built-in font",
        source="generated (seeded) from Pillow's built-in font (Pillow's licence: MIT-CMU, "
        "the HPND-style PIL licence; the font is Aileron Regular by Sora Sagano, CC0 1.0)",
        channels=1, n_train=GLYPHS_N["train"], n_test=GLYPHS_N["test"], gaussian=False,
        options=(), build=_glyphs, labelled=True,
    ),
    "patches": DatasetInfo(
        description="grey natural-image patches",
        source="five CC0 / public-domain photographs bundled with scikit-image",
        channels=1, n_train=3000, n_test=500, gaussian=False, options=(), build=_patches,
    ),
    "fields": DatasetInfo(
        description="Gaussian random fields, spectrum (k^2 + m^2)^(-p/2)",
        source="generated (seeded)",
        channels=1, n_train=2000, n_test=500, gaussian=True, options=("exponent", "mass"),
        build=_fields,
    ),
    "shapes": DatasetInfo(
        description="circles, rectangles and triangles with sharp edges",
        source="generated (seeded)",
        channels=1, n_train=2000, n_test=500, gaussian=False, options=(), build=_shapes,
    ),
}  # fmt: skip


@functools.lru_cache(maxsize=16)
def _cached(
    name: str, size: int, split: str, options: tuple[tuple[str, float], ...]
) -> tuple[Tensor, Tensor | None]:
    out = DATASETS[name].build(size, split, **dict(options))
    return out if isinstance(out, tuple) else (out, None)


def _as_float(x: Tensor) -> Tensor:
    """A fresh float32 copy; uint8 levels q become q / 127.5 - 1."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.clone()


# fmt: off
@overload
def load_dataset(
    name: str, size: int = ..., split: str = ..., n: int | None = ...,
    generator: torch.Generator | None = ..., labels: Literal[False] = ..., **options: float,
) -> Tensor: ...
@overload
def load_dataset(
    name: str, size: int = ..., split: str = ..., n: int | None = ...,
    generator: torch.Generator | None = ..., *, labels: Literal[True], **options: float,
) -> tuple[Tensor, Tensor]: ...
# fmt: on


def load_dataset(
    name: str,
    size: int = 32,
    split: str = "train",
    n: int | None = None,
    generator: torch.Generator | None = None,
    labels: bool = False,
    **options: float,
) -> Tensor | tuple[Tensor, Tensor]:
    """One split of a registered dataset, x (N, C, size, size) float32 in [-1, 1]; with
    ``labels=True`` (labelled datasets only: digits, glyphs) the pair (x, y), y (N,) int64.

    size: a power of two in 8..64. n: None for the whole split, else the first n items, or n
    items drawn without replacement with ``generator`` when one is given. ``options`` only for
    ``fields`` (exponent, mass). Whole splits are kept in a bounded in-process cache (16
    entries; float32 splits up to ~60 MB, glyphs as uint8, up to 246 MB at size 64), and
    glyphs also on disk (rgdiff_core.glyphs.cache_dir()); the result is always a fresh copy,
    safe to modify.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {sorted(DATASETS)}, got {name!r}")
    info = DATASETS[name]
    if _check_int("size", size, 8, 64) & (size - 1):  # not a power of two
        raise ValueError(f"size must be a power of two in 8..64 (8, 16, 32, 64), got {size!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not isinstance(labels, bool):
        raise ValueError(f"labels must be True or False, got {labels!r}")
    if labels and not info.labelled:
        have = sorted(k for k, v in DATASETS.items() if v.labelled)
        raise ValueError(f"labels=True needs a labelled dataset ({', '.join(have)}), got {name!r}")
    for key in options:
        if key not in info.options:
            raise ValueError(
                f"option {key!r} is not accepted by dataset {name!r} "
                f"(accepted: {list(info.options) or 'none'})"
            )
    if name == "fields":
        _check_field_args(size, options.get("exponent", 3.0), options.get("mass", 1.0))
    full, y = _cached(name, size, split, tuple(sorted((k, float(v)) for k, v in options.items())))
    if n is None:
        rows = slice(None)
    else:
        _check_int("n", n, 1, len(full))
        rows = slice(n) if generator is None else torch.randperm(len(full), generator=generator)[:n]
    x = _as_float(full[rows])
    return (x, y[rows].clone()) if labels else x
