"""Cheap sample-quality metrics: power spectra, sliced Wasserstein, memorisation distance.

Conventions: image batches are (B, C, H, W) with square images; sets of samples are compared
after flattening to (N, D), D = C*H*W. Metrics are computed in float64 on the inputs' device.

- Radially averaged power spectral density (``rapsd``): with X = fft2(x, norm="ortho") per
  image and channel, the power |X(k)|^2 is averaged over batch, channels and all integer
  frequencies k = (k_y, k_x) (``fftfreq(H) * H``) whose radius round(|k|) falls in bin r,
  r = 0 .. H // 2 (the corner modes beyond H // 2 are left out). With the orthonormal FFT,
  sum_k |X(k)|^2 = sum_pixels x^2, so P is a per-mode variance: white noise of variance v has
  P(r) = v, and a ``data.gaussian_field`` sample has E P = radial_average(gaussian_field_spectrum).
- ``rapsd_log_error``: mean over r > 0 of |log P_a(r) - log P_b(r)| (powers floored at 1e-30).
- ``sliced_wasserstein``: sqrt of the mean over random unit directions w of W2^2 between the
  empirical distributions of <w, a_i> and <w, b_j>, computed exactly for any two set sizes by
  merging the two empirical quantile functions.
- ``nearest_neighbour_distance``: for each sample, min_j ||x - r_j|| / sqrt(D): the RMS pixel
  difference to the nearest reference item (0 for an exact copy).
"""

from __future__ import annotations

import torch
from torch import Tensor

LOG_FLOOR = 1e-30


def _as_sets(a: Tensor, b: Tensor, name_a: str, name_b: str) -> tuple[Tensor, Tensor]:
    """Validate two sets of items and flatten them to (N, D) float64."""
    for name, x in ((name_a, a), (name_b, b)):
        if not isinstance(x, Tensor) or x.ndim < 2:
            raise ValueError(
                f"{name} must be a tensor of shape (N, ...), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        if x.shape[0] == 0 or x[0].numel() == 0:
            raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} must hold finite numbers")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"{name_b} items must have the shape of {name_a} items "
            f"{tuple(a.shape[1:])}, got {tuple(b.shape[1:])}"
        )
    return a.reshape(len(a), -1).double(), b.reshape(len(b), -1).to(a.device).double()


def radial_average(power: Tensor) -> tuple[Tensor, Tensor]:
    """Average a (..., H, H) array in FFT layout over rings round(|k|) = r, r = 0 .. H // 2.

    Leading dimensions are averaged too. Returns (k (H//2 + 1,) int64, mean (H//2 + 1,) float64).
    """
    if power.ndim < 2 or power.shape[-1] != power.shape[-2] or power.shape[-1] < 2:
        raise ValueError(f"power must have shape (..., H, H) with H >= 2, got {tuple(power.shape)}")
    size = power.shape[-1]
    freq = torch.fft.fftfreq(size, device=power.device, dtype=torch.float64) * size
    radius = torch.round(torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)).long().flatten()
    keep = radius <= size // 2
    values = power.double().reshape(-1, size * size).mean(0)
    n_bins = size // 2 + 1
    total = torch.zeros(n_bins, dtype=torch.float64, device=power.device)
    total.index_add_(0, radius[keep], values[keep])
    count = torch.bincount(radius[keep], minlength=n_bins).double()
    return torch.arange(n_bins, device=power.device), total / count


def rapsd(x: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectral density of a batch (B, C, H, H); see module docstring.

    Returns (k, P): integer radial bins 0 .. H // 2 (int64) and the mean power per bin (float64).
    """
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"x must be a batch of square images (B, C, H, H), got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    if x.numel() == 0 or x.shape[-1] < 2:
        raise ValueError(f"x must be non-empty with H >= 2, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x must hold finite numbers")
    spectrum = torch.fft.fft2(x.double(), norm="ortho")
    return radial_average(spectrum.abs() ** 2)


def rapsd_log_error(a: Tensor, b: Tensor) -> float:
    """Mean over radial bins k > 0 of |log P_a(k) - log P_b(k)| for two image batches."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Tensor) or x.ndim != 4:
            raise ValueError(
                f"{name} must be an image batch (B, C, H, W), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} must hold finite numbers")
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"b must have the image size of a {tuple(a.shape[-2:])}, got {tuple(b.shape[-2:])}"
        )
    _, p_a = rapsd(a)
    _, p_b = rapsd(b)
    log_ratio = (
        p_a[1:].clamp_min(LOG_FLOOR).log() - p_b[1:].to(p_a.device).clamp_min(LOG_FLOOR).log()
    )
    return log_ratio.abs().mean().item()


def _sorted_w2_sq(qa: Tensor, qb: Tensor) -> Tensor:
    """Exact W2^2 per column between sorted samples qa (Na, P) and qb (Nb, P)."""
    na, nb = len(qa), len(qb)
    # Quantile breakpoints on the common grid of multiples of 1/(na*nb), as exact integers.
    edges = torch.cat([torch.arange(1, na + 1) * nb, torch.arange(1, nb + 1) * na]).unique()
    lower = torch.cat([torch.zeros(1, dtype=edges.dtype), edges[:-1]])
    width = ((edges - lower).double() / (na * nb)).to(qa.device)
    ia, ib = (lower // nb).to(qa.device), (lower // na).to(qa.device)
    return (width[:, None] * (qa[ia] - qb[ib]) ** 2).sum(0)


def sliced_wasserstein(
    a: Tensor, b: Tensor, n_proj: int = 128, generator: torch.Generator | None = None
) -> float:
    """Sliced Wasserstein-2 distance between two sets of items (N_a, ...) and (N_b, ...).

    sqrt(mean_w W2^2(<w, a>, <w, b>)) over n_proj random unit directions w, drawn from
    ``generator`` (a fresh generator seeded 0 when None, so the value is reproducible and
    symmetric in a, b). Set sizes may differ; W2 is then exact between the empirical measures.
    """
    fa, fb = _as_sets(a, b, "a", "b")
    if isinstance(n_proj, bool) or not isinstance(n_proj, int) or n_proj < 1:
        raise ValueError(f"n_proj must be an integer >= 1, got {n_proj!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    directions = torch.randn(
        fa.shape[1], n_proj, generator=generator, device=generator.device, dtype=torch.float64
    ).to(fa.device)
    directions /= directions.norm(dim=0, keepdim=True)
    qa = (fa @ directions).sort(dim=0).values
    qb = (fb @ directions).sort(dim=0).values
    return _sorted_w2_sq(qa, qb).mean().sqrt().item()


def nearest_neighbour_distance(samples: Tensor, reference: Tensor, chunk: int = 1024) -> Tensor:
    """RMS-per-pixel L2 distance (n,) float64 from each sample to its nearest reference item.

    Distance = min_j ||x - r_j||_2 / sqrt(D). The search runs on blocks of chunk x chunk pairs
    (bounded memory); the winning pair's distance is then recomputed directly, so an exact copy
    of a reference item gives exactly 0.
    """
    x, ref = _as_sets(samples, reference, "samples", "reference")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    out = torch.empty(len(x), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        best = torch.full((len(block),), float("inf"), dtype=torch.float64, device=x.device)
        best_idx = torch.zeros(len(block), dtype=torch.long, device=x.device)
        for r_start in range(0, len(ref), chunk):
            dist = torch.cdist(block, ref[r_start : r_start + chunk])
            value, idx = dist.min(dim=1)
            better = value < best
            best = torch.where(better, value, best)
            best_idx = torch.where(better, idx + r_start, best_idx)
        out[start : start + len(block)] = (block - ref[best_idx]).norm(dim=1)
    return out / x.shape[1] ** 0.5
