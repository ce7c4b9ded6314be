"""The ``glyphs`` dataset: handwriting-like digits rendered from Pillow's built-in font.

Pillow's ``ImageFont.load_default(size=...)`` is Aileron Regular (Sora Sagano, dotcolon.net;
CC0 1.0, embedded in PIL/ImageFont.py), so nothing is downloaded and no system font is read.

Rendering. Each digit 0..9 is drawn once per stroke variant (eroded, plain, or thickened with
Pillow's ``stroke_width``) in a TILE x TILE px tile, centred on its ink bounding box; the 50
tiles form one atlas. An image of a digit d with variant v is then, with p in [-1, 1]^2 the
output frame (x right, y down) and g the glyph's frame (the central FRAME of its tile):

    g = M^-1 (p - t) + e(p),   M = R(theta) Sh(k) diag(s a, s)   (rotation, shear, scale),

e a smooth elastic displacement (a 4 x 4 grid of Gaussian offsets, bicubic upsampled), so the
image is the atlas sampled bilinearly at g (``grid_sample``) on a WARP x WARP grid, averaged
over WARP/size blocks (area downsampling to ``size``), blurred by a 3 x 3 Gaussian at the output
resolution, scaled so that its peak ink is 1 (thin strokes stay white at small sizes) and
quantised to 8 bits: q = round(255 * ink) in 0..255, x = q / 127.5 - 1. Sampling coordinates
are clamped to the digit's own tile, whose border is blank, so tiles never bleed.

Determinism. Images come in chunks of CHUNK; chunk c of seed s draws every parameter from its
own torch generator (seeded by numpy's SeedSequence([s, c])) before any size enters, so an
image is the same at every size and for every n (image i of n = 1000 is image i of n = 60000),
and labels are balanced within every chunk (a permutation of 0..9 repeated). Results are
cached on disk (``cache_dir()``), keyed by VERSION, size, seed and n; bump VERSION whenever the
pixels change.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from torch import Tensor

VERSION = 2  # part of every cache key: bump when the pixels change
TILE = 192  # px per atlas tile
FRAME = 0.75  # the output frame covers the central 75 % of a tile (room for the warps)
FONT_SIZE = 140  # digit ink about 100 px high: 0.7 of the frame, as in MNIST
WARP = 128  # px of the warped image before area downsampling
CHUNK = 200  # images per generator and per batch (buffers stay under glibc's mmap threshold)
# Stroke variants: negative = erode by that many px per side, positive = Pillow stroke_width.
STROKES = (-1, 0, 1, 2, 3)
LEVELS = 256  # 8-bit output

# Ranges of the random transforms, uniform, in units of the output frame [-1, 1]^2.
ROTATION_DEG = 12.0  # theta in +-12 degrees
SHEAR = (-0.4, 0.15)  # k: x += k y with y down, so k < 0 leans right, as most handwriting
SCALE = (0.78, 1.0)  # s
ASPECT = (0.75, 1.2)  # a: width / height
SHIFT = 0.06  # t in +-0.06 per axis
ELASTIC = (0.04, 0.10)  # per image, the std of its Gaussian elastic offsets


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer in {rng}, got {value!r}")
    return int(value)


def _check_size(size: object) -> int:
    if _check_int("size", size, 1, WARP) & (size - 1) or WARP % size:
        raise ValueError(f"size must be a power of two in 1..{WARP}, got {size!r}")
    return int(size)


# ---------------------------------------------------------------- the glyph atlas


def _glyph_tile(digit: int, stroke: int, font: ImageFont.FreeTypeFont) -> np.ndarray:
    img = Image.new("L", (TILE, TILE), 0)
    draw = ImageDraw.Draw(img)
    width = max(stroke, 0)
    draw.text((0, 0), str(digit), fill=255, font=font, stroke_width=width, stroke_fill=255)
    left, top, right, bottom = img.getbbox()
    # Centre the ink's bounding box in the tile.
    ink = img.crop((left, top, right, bottom))
    tile = Image.new("L", (TILE, TILE), 0)
    tile.paste(ink, ((TILE - (right - left)) // 2, (TILE - (bottom - top)) // 2))
    for _ in range(max(-stroke, 0)):
        tile = tile.filter(ImageFilter.MinFilter(3))
    return np.asarray(tile, dtype=np.float32) / 255.0


@functools.lru_cache(maxsize=1)
def glyph_atlas() -> Tensor:
    """Atlas (1, 1, len(STROKES) * TILE, 10 * TILE) float32 in [0, 1]: row v, column d."""
    font = ImageFont.load_default(size=FONT_SIZE)
    if not isinstance(font, ImageFont.FreeTypeFont):  # pragma: no cover - Pillow without FreeType
        raise RuntimeError("the glyphs dataset needs Pillow built with FreeType")
    rows = [np.concatenate([_glyph_tile(d, s, font) for d in range(10)], axis=1) for s in STROKES]
    return torch.from_numpy(np.concatenate(rows, axis=0))[None, None]


# ---------------------------------------------------------------- one chunk


def _chunk_generator(seed: int, chunk: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, chunk]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _draw_params(n: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Every random number of n images, in a fixed order, before any size enters."""
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]
    stroke = torch.randint(len(STROKES), (n,), generator=gen)
    theta = _uniform(n, -math.radians(ROTATION_DEG), math.radians(ROTATION_DEG), gen)
    shear = _uniform(n, *SHEAR, gen)
    scale = _uniform(n, *SCALE, gen)
    aspect = _uniform(n, *ASPECT, gen)
    shift = _uniform(2 * n, -SHIFT, SHIFT, gen).reshape(n, 2)
    amp = _uniform(n, *ELASTIC, gen)
    elastic = torch.randn(n, 2, 4, 4, generator=gen, dtype=torch.float64) * amp[:, None, None, None]
    return dict(labels=labels, stroke=stroke, theta=theta, shear=shear, scale=scale,
                aspect=aspect, shift=shift, elastic=elastic)  # fmt: skip


def _inverse_affine(p: dict[str, Tensor]) -> Tensor:
    """M^-1 (n, 2, 2) for M = R(theta) Sh(k) diag(s a, s), acting on (x, y) columns."""
    cos, sin = p["theta"].cos(), p["theta"].sin()
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    shear = torch.stack([torch.stack([one, p["shear"]], -1), torch.stack([zero, one], -1)], -2)
    diag = torch.diag_embed(torch.stack([p["scale"] * p["aspect"], p["scale"]], -1))
    return torch.linalg.inv(rot @ shear @ diag)


@functools.lru_cache(maxsize=1)
def _warp_basis() -> Tensor:
    """(WARP^2, 19) float32 at every WARP pixel centre (row-major): x, y, 1 and the 16 weights
    of a 4 x 4 grid of offsets under F.interpolate's bicubic (align_corners=True, so the grid
    spans the outermost pixel centres). Source coordinates are then one matmul per chunk."""
    centres = (2 * torch.arange(WARP, dtype=torch.float64) + 1) / WARP - 1
    yy, xx = torch.meshgrid(centres, centres, indexing="ij")
    eye = torch.eye(4, dtype=torch.float64).reshape(4, 1, 1, 4)
    cubic = F.interpolate(eye, size=(1, WARP), mode="bicubic", align_corners=True)[:, 0, 0].T
    elastic = torch.einsum("hi,wj->hwij", cubic, cubic).reshape(WARP * WARP, 16)
    ones = torch.ones(WARP * WARP, 1, dtype=torch.float64)
    return torch.cat([xx.reshape(-1, 1), yy.reshape(-1, 1), ones, elastic], 1).float()


def _atlas_grid(p: dict[str, Tensor]) -> Tensor:
    """grid_sample grid (1, WARP^2, n, 2) into the atlas: pixel-major (row r of the grid is
    pixel r of every image, which saves transposing the largest tensors), (x, y) normalised.

    local = FRAME * (M^-1 (p - t) + e(p)) in [-1, 1] over the digit's own tile, clamped to the
    centres of the tile's outermost (blank) pixels, then moved to the tile's place in the atlas.
    """
    n, rows, cols = len(p["labels"]), len(STROKES), 10
    inv = _inverse_affine(p)  # (n, 2, 2): [axis k, (x, y)]
    coef = torch.cat(
        [inv.transpose(1, 2), -(inv @ p["shift"][:, :, None]).transpose(1, 2),
         p["elastic"].reshape(n, 2, 16).transpose(1, 2)], 1,
    )  # fmt: skip  # (n, 19, 2), matching _warp_basis's columns
    local = _warp_basis() @ (FRAME * coef).float().permute(1, 0, 2).reshape(19, 2 * n)
    inner = 1 - 1 / TILE
    local = local.clamp_(-inner, inner).reshape(WARP * WARP, n, 2)
    tile = torch.stack([(2 * p["labels"] + 1) / cols, (2 * p["stroke"] + 1) / rows], -1) - 1
    local.mul_(torch.tensor([1 / cols, 1 / rows])).add_(tile.float())
    return local[None]


def _blur(x: Tensor, dims: tuple[int, int]) -> Tensor:
    """Separable 3-tap Gaussian (sigma 0.5 px) over two dims, edges replicated."""
    w = math.exp(-1 / (2 * 0.5**2))
    w_side, w_mid = w / (1 + 2 * w), 1 / (1 + 2 * w)
    for d in dims:
        m = x.shape[d]
        pad = torch.cat([x.narrow(d, 0, 1), x, x.narrow(d, m - 1, 1)], d)
        x = w_mid * x + w_side * (pad.narrow(d, 0, m) + pad.narrow(d, 2, m))
    return x


def _render_chunk(p: dict[str, Tensor], size: int) -> Tensor:
    """uint8 images (n, 1, size, size) of one chunk's parameters."""
    n, f = len(p["labels"]), WARP // size
    ink = F.grid_sample(glyph_atlas(), _atlas_grid(p), mode="bilinear", align_corners=False)
    # Area downsampling: mean over f x f blocks, still pixel-major (size, size, n).
    ink = ink.reshape(size, f, size, f, n).sum(3).sum(1) / f**2
    ink = _blur(ink, (0, 1))
    # Peak ink at full white, as in MNIST: thin strokes at small sizes stay visible.
    ink = ink / ink.amax((0, 1)).clamp_min(1e-6)
    q = (ink * (LEVELS - 1)).round_().clamp_(0, LEVELS - 1).to(torch.uint8)
    return q.permute(2, 0, 1).contiguous()[:, None]


def render_glyphs(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n glyph images at ``size`` from ``seed``: (uint8 (n, 1, size, size), int64 labels (n,)).

    Pixel levels q in 0..255 (ink 255, background 0); the datasets' x is q / 127.5 - 1.
    Not cached; see ``load_glyphs``. Runs on one intra-op thread (the caller's setting is
    restored; torch keeps it per thread): the levels then do not depend on the thread count,
    and on a shared 2-core machine it took 13 s for 60 000 images at 32 px against 86 s on
    two threads, which wait on each other in every one of the many mid-sized ops.
    """
    _check_int("n", n, 1)
    size = _check_size(size)
    _check_int("seed", seed, 0, 2**63 - 1)
    images, labels = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for c in range(math.ceil(n / CHUNK)):
            p = _draw_params(CHUNK, _chunk_generator(seed, c))
            m = min(CHUNK, n - c * CHUNK)
            p = {k: v[:m] for k, v in p.items()}
            images.append(_render_chunk(p, size))
            labels.append(p["labels"])
    finally:
        torch.set_num_threads(threads)
    return torch.cat(images), torch.cat(labels)


# ---------------------------------------------------------------- disk cache


def cache_dir() -> Path | None:
    """Where generated splits are cached: $RGDIFF_CACHE, else $XDG_CACHE_HOME/rgdiff, else
    ~/.cache/rgdiff. RGDIFF_CACHE set to the empty string turns the disk cache off (None)."""
    env = os.environ.get("RGDIFF_CACHE")
    if env is not None:
        return Path(env).expanduser() if env else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rgdiff"


def cache_path(size: int, seed: int, n: int) -> Path | None:
    root = cache_dir()
    return None if root is None else root / f"glyphs_v{VERSION}_{size}px_seed{seed}_n{n}.npz"


def _read(path: Path, size: int, n: int) -> tuple[Tensor, Tensor] | None:
    """The cached split, or None if it is missing, unreadable or not what it should be."""
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]  # zip CRCs are checked on reading
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    ok = (
        images.dtype == np.uint8
        and images.shape == (n, 1, size, size)
        and labels.dtype == np.int64
        and labels.shape == (n,)
        and labels.min(initial=0) >= 0
        and labels.max(initial=0) <= 9
    )
    return (torch.from_numpy(images), torch.from_numpy(labels)) if ok else None


def _write(path: Path, images: Tensor, labels: Tensor) -> None:
    """Write atomically (a temporary file in the same folder, then rename); a cache that cannot
    be written is skipped, not an error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            tmp = Path(f.name)
            np.savez_compressed(f, images=images.numpy(), labels=labels.numpy())
        os.replace(tmp, path)
    except OSError:
        if "tmp" in locals():
            tmp.unlink(missing_ok=True)


def load_glyphs(size: int, seed: int, n: int) -> tuple[Tensor, Tensor]:
    """``render_glyphs(n, size, seed)``, read from the disk cache when it holds a valid copy,
    else generated and written there (a corrupt or mismatched file is regenerated)."""
    _check_int("n", n, 1)
    size = _check_size(size)
    _check_int("seed", seed, 0, 2**63 - 1)
    path = cache_path(size, seed, n)
    if path is not None and path.exists():
        cached = _read(path, size, n)
        if cached is not None:
            return cached
    images, labels = render_glyphs(n, size, seed)
    if path is not None:
        _write(path, images, labels)
    return images, labels
