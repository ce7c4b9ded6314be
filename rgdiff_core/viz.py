"""Display helpers: arrays for pictures and plots, no plotting library and no streamlit.

Everything here turns library objects into plain numpy arrays (or encoded image bytes) that a
front end can draw; none of it is needed to train or sample.

- Images are (N, C, H, W) or (C, H, W) with values in [-1, 1]; `to_uint8` maps [-1, 1] to
  0..255 (grey for C = 1, RGB for C = 3), `image_grid` tiles a batch into one image.
- Coefficient layouts (`coefficient_layout`) show a coefficient vector c (D,) the way its basis
  is usually drawn; each basis gives its own (Basis.coefficient_layout): pixel -> the image
  itself; wavelet -> the pyramid mosaic of pywt's coeffs_to_array ([[approx, V], [H, D]]
  recursively, coarse at the top left); Fourier -> |F(k)| on the centred (ky, kx) grid, each
  cos/sin pair's energy shared equally by k and -k (so the map is |rfft2|-consistent and
  symmetric); DCT -> |c| at (ky, kx); PCA -> bars over rank.
- Schedule curves: gamma_i(t) on a grid and the true log-SNR_i = log v_i - gamma_i
  (docs/maths.md §1); the generation-order map sorts components by label (lowest = generated first)
  and marks the SNR = 1 frontier t*_i where log-SNR_i crosses 0.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .bases import CoefficientLayout, wavelet_mosaic

__all__ = [
    "to_numpy",
    "to_uint8",
    "image_grid",
    "upscale",
    "encode_png",
    "encode_gif",
    "image_table",
    "CoefficientLayout",
    "coefficient_layout",
    "wavelet_mosaic",
    "frequency_map",
    "group_index",
    "group_means",
    "schedule_curves",
    "true_log_snr",
    "generation_order_map",
    "snr_frontier",
    "unit_log_snr",
    "prior_samples",
    "noised",
    "curves_csv",
    "basis_function_grid",
    "log_magnitude",
    "rapsd_arrays",
]


# ---------------------------------------------------------------- images


def to_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """A detached CPU float64 numpy copy of a tensor (arrays pass through as float64)."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def to_uint8(x: Tensor | np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8. (C, H, W) -> (H, W) for C = 1, (H, W, C) otherwise; (H, W) stays."""
    a = to_numpy(x)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    elif a.ndim != 2:
        raise ValueError(f"x must have shape (C, H, W) or (H, W), got {a.shape}")
    return np.round((np.nan_to_num(a) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)


def image_grid(
    x: Tensor | np.ndarray, ncols: int | None = None, pad: int = 1, pad_value: float = 1.0
) -> np.ndarray:
    """Tile a batch (N, C, H, W) into one (C, rows*(H+pad)-pad, cols*(W+pad)-pad) array."""
    a = to_numpy(x)
    if a.ndim != 4 or a.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (N, C, H, W), got {a.shape}")
    n, c, h, w = a.shape
    ncols = n if ncols is None else max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    out = np.full((c, nrows * (h + pad) - pad, ncols * (w + pad) - pad), pad_value)
    for i in range(n):
        r, q = divmod(i, ncols)
        out[:, r * (h + pad) : r * (h + pad) + h, q * (w + pad) : q * (w + pad) + w] = a[i]
    return out


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an (H, W) or (H, W, C) image by an integer factor."""
    factor = max(1, int(factor))
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image (H, W) or (H, W, 3)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG")
    return buf.getvalue()


def encode_gif(frames: Sequence[np.ndarray], duration_ms: int = 80, loop: int = 0) -> bytes:
    """Animated GIF bytes of uint8 frames (each (H, W) grey or (H, W, 3))."""
    if len(frames) == 0:
        raise ValueError("frames must be a non-empty sequence of uint8 images")
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=int(duration_ms),
        loop=int(loop),
        optimize=False,
    )
    return buf.getvalue()


def image_table(
    cells: Sequence[Sequence[np.ndarray]],
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    title: str = "",
    gap: int = 12,
    font_size: int = 24,
) -> np.ndarray:
    """uint8 images (H, W) grey or (H, W, 3), all one size, laid out as a table on white: a
    label over each column, one left of each row, and a title above all (any may be empty).
    Returns an (H', W', 3) uint8 image; labels in Pillow's built-in font (nothing to
    install). Slides and the lecture view's GIF frames are drawn with it."""
    from PIL import ImageDraw, ImageFont

    rows = [list(r) for r in cells]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("cells must be a non-empty rectangular table of images")
    h, w = rows[0][0].shape[:2]
    if any(c.shape[:2] != (h, w) or c.dtype != np.uint8 for r in rows for c in r):
        raise ValueError("every cell must be a uint8 image of the same height and width")
    font = ImageFont.load_default(size=int(font_size))
    line = int(font_size * 1.4)
    left = max((int(font.getlength(t)) for t in row_labels), default=0)
    left = left + gap if left else 0
    top = (line if title else 0) + (line if col_labels else 0)
    n_r, n_c = len(rows), len(rows[0])
    canvas = Image.new("RGB", (left + n_c * (w + gap) + gap, top + n_r * (h + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((gap, 2), title, fill="black", font=font)
    for j, text in enumerate(col_labels):
        draw.text((left + gap + j * (w + gap), top - line + 2), text, fill="black", font=font)
    for i, row in enumerate(rows):
        y = top + gap + i * (h + gap)
        if i < len(row_labels):
            draw.text((gap, y + (h - font_size) // 2), row_labels[i], fill="black", font=font)
        for j, cell in enumerate(row):
            rgb = Image.fromarray(np.ascontiguousarray(cell)).convert("RGB")
            canvas.paste(rgb, (left + gap + j * (w + gap), y))
    return np.asarray(canvas)


# ---------------------------------------------------------------- coefficient layouts


def frequency_map(basis, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|coefficient| placed at its frequency, one channel's c (H*W,), for a basis with
    frequencies (Fourier: centred signed (ky, kx) grid; DCT: (ky, kx) >= 0 grid).
    Returns (map (H, W), kx coords (W,), ky coords (H,))."""
    return basis.frequency_map(c)


def coefficient_layout(basis, c: Tensor | np.ndarray, max_bars: int = 128) -> CoefficientLayout:
    """Layout of one coefficient vector c (D,) of `basis` for display: the basis' own
    (Basis.coefficient_layout; module docstring). Multi-channel images show their channels side
    by side (images) or in component order (bars)."""
    return basis.coefficient_layout(c, max_bars)


# ---------------------------------------------------------------- groups and curves


def group_index(groups: list[tuple[str, Tensor]], dim: int) -> np.ndarray:
    """Group id (D,) int of every component, from basis.groups()."""
    out = np.full(dim, -1, dtype=np.int64)
    for g, (_, idx) in enumerate(groups):
        out[idx.cpu().numpy()] = g
    return out


def group_means(values: np.ndarray, groups: list[tuple[str, Tensor]]) -> np.ndarray:
    """Mean of values (..., D) over each group's components -> (..., G)."""
    values = np.asarray(values)
    return np.stack([values[..., idx.cpu().numpy()].mean(-1) for _, idx in groups], -1)


def true_log_snr(gamma: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """log SNR_i = log v_i - gamma_i (natural log), broadcasting (..., D) against (D,)."""
    return np.log(np.asarray(variances)) - np.asarray(gamma)


def schedule_curves(
    schedule, dim: int, variances: Tensor | np.ndarray, n_t: int = 101
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t (T,), gamma (T, D), true log-SNR (T, D)) on a uniform grid of [0, 1]."""
    t = torch.linspace(0, 1, n_t, dtype=torch.float64)
    gamma = to_numpy(schedule(t).gamma)
    gamma = np.broadcast_to(gamma.reshape(n_t, -1), (n_t, dim))
    return t.numpy(), gamma, true_log_snr(gamma, to_numpy(variances))


def snr_frontier(log_snr: np.ndarray, t: np.ndarray) -> np.ndarray:
    """t where each row of log_snr (R, T), decreasing in t, first reaches 0 (linear
    interpolation). 0 if it starts at or below 0; 1 if it never gets there."""
    log_snr = np.asarray(log_snr)
    below = log_snr <= 0
    first = np.where(below.any(1), below.argmax(1), len(t))
    out = np.ones(len(log_snr))
    for r, j in enumerate(first):
        if j == 0:
            out[r] = t[0]
        elif j < len(t):
            a, b = log_snr[r, j - 1], log_snr[r, j]
            out[r] = t[j - 1] + (t[j] - t[j - 1]) * a / (a - b) if a != b else t[j]
    return out


def generation_order_map(
    log_snr: np.ndarray, labels: np.ndarray, t: np.ndarray, max_rows: int = 256
) -> dict[str, np.ndarray]:
    """Components sorted by label (lowest, generated first, in row 0) x t -> log-SNR.

    log_snr: (T, D). Rows are averaged in consecutive blocks when D > max_rows. Returns
    z (R, T), frontier (R,) (t where the row's log-SNR crosses 0, see `snr_frontier`),
    label (R,) mean label per row and first (R,) the sorted position of each row's first
    component.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    order = np.argsort(labels, kind="stable")
    z = np.asarray(log_snr).T[order]
    d = len(order)
    block = max(1, math.ceil(d / max_rows))
    starts = np.arange(0, d, block)
    z = np.add.reduceat(z, starts, axis=0) / np.diff(np.append(starts, d))[:, None]
    lab = np.add.reduceat(labels[order], starts) / np.diff(np.append(starts, d))
    return {"z": z, "frontier": snr_frontier(z, t), "label": lab, "first": starts}


def unit_log_snr(log_snr: np.ndarray, data_variance: np.ndarray) -> np.ndarray:
    """log SNR_i - log lambda_i: the log-SNR a component of unit data variance would have on
    the same path; one scalar schedule with a white prior gives the same value for every i, so
    standard diffusion runs along the diagonal of any two-component plane."""
    return np.asarray(log_snr) - np.log(np.asarray(data_variance))


# ---------------------------------------------------------------- samples and noising


def prior_samples(basis, prior, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n images (n, C, H, W) from the prior N(mu, U^T S^2 U): decode(unwhiten(eps))."""
    device = prior.mean.device
    eps = torch.randn((n, basis.dim), generator=generator, device=device)
    return basis.decode(prior.unwhiten(eps))


def noised(process, u: Tensor, t: float, seed: int) -> tuple[Tensor, Tensor]:
    """process.add_noise(u, t) with a fresh generator seeded `seed`, so every t (and every
    process of the same dimension) sees the same noise draw eps. Returns (z_t, eps)."""
    gen = torch.Generator(device=u.device).manual_seed(int(seed))
    return process.add_noise(u, t, generator=gen)


def curves_csv(t: np.ndarray, columns: dict[str, np.ndarray]) -> str:
    """CSV text: a `t` column, then one column per named curve (each (T,))."""
    names = ["t", *columns]
    for name in columns:
        if '"' in name:
            raise ValueError(f"column names must not contain quotes, got {name!r}")
    rows = [",".join(f'"{n}"' if "," in n else n for n in names)]
    data = np.column_stack([np.asarray(t)] + [np.asarray(v) for v in columns.values()])
    rows += [",".join(f"{v:.6g}" for v in row) for row in data]
    return "\n".join(rows) + "\n"


# The lines between basis-function tiles, #2b5f8c on the [-1, 1] scale: a colour no grey tile
# has, so a flat white tile (a DC component) or a flat grey one still shows its edges.
FRAME_RGB = (43 / 127.5 - 1, 95 / 127.5 - 1, 140 / 127.5 - 1)


def basis_function_grid(
    basis, indices: Sequence[int], ncols: int = 8, frame: Sequence[float] = FRAME_RGB
) -> np.ndarray:
    """Basis functions (rows of U) at `indices` tiled into one RGB (3, H', W') image, each
    scaled to [-1, 1] by its own largest |value| (grey = 0), with 1-pixel lines of colour
    `frame` (RGB in [-1, 1]) between the tiles and around the grid. Grey bases (C = 1) are
    repeated over the three channels; C must be 1 or 3."""
    imgs = to_numpy(basis.basis_images(list(indices)))
    if imgs.shape[1] not in (1, 3):
        raise ValueError(f"basis images must have 1 or 3 channels, got {imgs.shape[1]}")
    peak = np.abs(imgs).reshape(len(imgs), -1).max(1).clip(1e-12)[:, None, None, None]
    imgs = np.repeat(imgs / peak, 3 // imgs.shape[1], axis=1)
    n, _, h, w = imgs.shape
    ncols = max(1, min(int(ncols), n))
    blank = np.full((math.ceil(n / ncols) * ncols - n, *imgs.shape[1:]), np.inf)
    grid = image_grid(np.concatenate([imgs, blank]), ncols=ncols, pad=1, pad_value=np.nan)
    grid = np.pad(grid, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    grid = np.where(np.isnan(grid), np.asarray(frame, dtype=float)[:, None, None], grid)
    return np.where(np.isinf(grid), 1.0, grid)  # empty slots of the last row: page white


def log_magnitude(layout: CoefficientLayout, floor: float = 1e-6) -> np.ndarray:
    """log10 |values| of a layout, floored."""
    return np.log10(np.maximum(np.abs(layout.values), floor))


def rapsd_arrays(x: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """metrics.rapsd of a batch (B, C, H, H) as numpy arrays (k, P)."""
    from .metrics import rapsd

    k, p = rapsd(x)
    return k.cpu().numpy(), p.cpu().numpy()


@dataclass
class NoisedView:
    """One image under the forward process at time t (all on the CPU).

    x_t (1, C, H, W): the noised image in data space; coefficients (D,): x_t's basis
    coefficients, prior.unwhiten(z_t); noise (1, C, H, W): decode(eps), the t = 1 image of
    the same draw; log_snr (D,): true log-SNR_i(t) = log v_i - gamma_i(t)."""

    x_t: Tensor
    coefficients: Tensor
    noise: Tensor
    log_snr: np.ndarray


def noised_view(process, x0: Tensor, t: float, seed: int, variances) -> NoisedView:
    """x0 (1, C, H, W) noised to time t with the noise draw of `seed` (see `noised`)."""
    u = process.encode(x0.to(process.device))
    z, eps = noised(process, u, t, seed)
    gamma = to_numpy(process.noise_state(t).gamma).reshape(-1)
    log_snr = np.broadcast_to(true_log_snr(gamma, to_numpy(variances)), (process.dim,))
    return NoisedView(
        process.decode(z).cpu(),
        process.prior.unwhiten(z)[0].cpu(),
        process.decode(eps).cpu(),
        np.array(log_snr),
    )


def spread_components(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of up to k components spread evenly over the order of `labels` (D,)."""
    order = np.argsort(np.asarray(labels), kind="stable")
    pick = np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))
    return order[pick]


def order_groups(labels: np.ndarray, n_groups: int = 32) -> list[tuple[str, Tensor]]:
    """Components in generation order (ascending label, stable) cut into at most n_groups
    consecutive groups of (nearly) equal size, in the format of basis.groups(). Named by
    their label range, e.g. "l=3" or "l=0.5–1.2"."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    order = np.argsort(labels, kind="stable")
    out = []
    for idx in np.array_split(order, min(n_groups, len(order))):
        lo, hi = labels[idx].min(), labels[idx].max()
        name = f"l={lo:.3g}" if lo == hi else f"l={lo:.3g}–{hi:.3g}"
        out.append((name, torch.from_numpy(idx)))
    return out
