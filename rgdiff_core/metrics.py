"""Sample-quality metrics: power spectra, sliced Wasserstein, memorisation distance, and FD,
precision/recall, confidence and nearest-neighbour ratio in a glyph classifier's features.

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

Sample quality in the 128 penultimate features of the shipped glyph classifier
(rgdiff_core/classifier.py; images (N, 1, H, H) in [-1, 1], resized to 32 x 32); FD and
precision/recall also take features (N, F) computed already. Each returns ``Estimate(value,
se)``, se the standard deviation over ``n_boot`` bootstrap replicates (every set resampled with
replacement, independently, with ``generator``; a fresh generator seeded 0 when None):

- ``frechet_distance`` (FD): ||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a^1/2 C_b C_a^1/2)^1/2)
  between the Gaussians of the two feature sets (means mu, unbiased covariances C), computed
  with symmetric eigendecompositions in float64. Biased upwards at finite n: compare FDs at
  the same set sizes (``sample_quality`` gives held-out data's FD as the yardstick).
- ``precision_recall`` (Kynkaenniemi et al. 2019): each reference feature r owns the ball of
  radius its k-th nearest other reference feature; precision is the fraction of samples inside
  some reference ball, recall the fraction of reference items inside some sample ball (radii
  from the samples' own k-th neighbours). In a bootstrap replicate, over the other draws.
- ``classifier_confidence``: mean over samples of max_c softmax(logits)_c; ``class_histogram``:
  fraction of samples per predicted class 0..9.
- ``nearest_neighbour_ratio``: mean nearest-neighbour distance (RMS per pixel) of the samples
  to the training set over that of held-out images to the training set: ~1 for new items of
  the data distribution, << 1 for copies of training items, >> 1 for items off the data. The
  training set is fixed; samples and held-out distances are resampled.
- ``sample_quality``: all of them at once from n samples, n training and n held-out images.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .classifier import classifier_features, classifier_outputs  # the first public here too

LOG_FLOOR = 1e-30
N_BOOT = 100  # bootstrap replicates for the standard errors


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


# ---------------------------------------------------------------- sample quality in features


class Estimate(NamedTuple):
    """A metric's value and its bootstrap standard error."""

    value: float
    se: float


def _check_count(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


def _features(x: Tensor, name: str, min_n: int) -> Tensor:
    """(N, F) float64 features of images (N, 1, H, H) or of features (N, F) given directly."""
    if isinstance(x, Tensor) and x.ndim == 4:
        x = classifier_features(x, name)
    elif not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must be images (N, 1, H, H) or features (N, F), got "
            f"{getattr(x, 'shape', type(x).__name__)}"
        )
    elif x.is_complex() or not torch.isfinite(x).all():
        raise ValueError(f"{name} must hold finite real numbers")
    if len(x) < min_n:
        raise ValueError(f"{name} needs at least {min_n} items, got {len(x)}")
    return x.double()


def _resamples(n: int, n_boot: int, generator: torch.Generator, device) -> Tensor:
    return torch.randint(n, (n_boot, n), generator=generator, device=generator.device).to(device)


def _generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")
    return generator


def _se(values: list[Tensor] | Tensor) -> float:
    return torch.stack(list(values)).double().std().item()


def _moments(f: Tensor) -> tuple[Tensor, Tensor]:
    mean = f.mean(0)
    centred = f - mean
    return mean, centred.T @ centred / (len(f) - 1)


def _frechet(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> Tensor:
    lam, vec = torch.linalg.eigh(cov_a)
    root = (vec * lam.clamp_min(0).sqrt()) @ vec.T  # C_a^1/2
    middle = root @ cov_b @ root
    cross = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp_min(0).sqrt().sum()
    dist = (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return dist.clamp_min(0)


def frechet_distance(
    samples: Tensor,
    reference: Tensor,
    *,
    n_boot: int = N_BOOT,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Fréchet distance between the classifier features of samples and reference images (or
    between two feature sets (N, F)); see the module docstring. Each set needs >= 2 items."""
    fa, fb = _features(samples, "samples", 2), _features(reference, "reference", 2)
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"reference must have {fa.shape[1]} features, got {fb.shape[1]}")
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    fb = fb.to(fa.device)
    value = _frechet(*_moments(fa), *_moments(fb)).item()
    ia = _resamples(len(fa), n_boot, generator, fa.device)
    ib = _resamples(len(fb), n_boot, generator, fa.device)
    boot = [_frechet(*_moments(fa[i]), *_moments(fb[j])) for i, j in zip(ia, ib, strict=True)]
    return Estimate(value, _se(boot))


def _knn_radius(dist: Tensor, idx: Tensor, k: int) -> Tensor:
    """k-th smallest distance from each drawn item to the other draws (its own copies out)."""
    sub = dist[idx][:, idx]
    sub = sub.masked_fill(idx[:, None] == idx[None, :], float("inf"))
    return sub.kthvalue(k, dim=1).values


def _coverage(cross: Tensor, i_s: Tensor, i_r: Tensor, rad_r: Tensor) -> Tensor:
    """Fraction of drawn samples inside some drawn reference ball; cross (N_s, N_r)."""
    return (cross[i_s][:, i_r] <= rad_r[None, :]).any(1).double().mean()


def precision_recall(
    samples: Tensor,
    reference: Tensor,
    *,
    k: int = 3,
    n_boot: int = N_BOOT,
    generator: torch.Generator | None = None,
) -> tuple[Estimate, Estimate]:
    """(precision, recall) of samples against reference images (or feature sets (N, F)) with
    k-nearest-neighbour manifolds (Kynkaenniemi et al. 2019); each set needs >= k + 1 items."""
    k = _check_count("k", k, 1)
    fs, fr = _features(samples, "samples", k + 1), _features(reference, "reference", k + 1)
    if fs.shape[1] != fr.shape[1]:
        raise ValueError(f"reference must have {fs.shape[1]} features, got {fr.shape[1]}")
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    fr = fr.to(fs.device)
    d_ss, d_rr, d_sr = torch.cdist(fs, fs), torch.cdist(fr, fr), torch.cdist(fs, fr)

    def both(i_s: Tensor, i_r: Tensor) -> tuple[Tensor, Tensor]:
        precision = _coverage(d_sr, i_s, i_r, _knn_radius(d_rr, i_r, k))
        recall = _coverage(d_sr.T, i_r, i_s, _knn_radius(d_ss, i_s, k))
        return precision, recall

    all_s = torch.arange(len(fs), device=fs.device)
    precision, recall = both(all_s, torch.arange(len(fr), device=fs.device))
    i_s = _resamples(len(fs), n_boot, generator, fs.device)
    i_r = _resamples(len(fr), n_boot, generator, fs.device)
    boot = torch.stack([torch.stack(both(a, b)) for a, b in zip(i_s, i_r, strict=True)])
    return (
        Estimate(precision.item(), _se(boot[:, 0])),
        Estimate(recall.item(), _se(boot[:, 1])),
    )


def _mean_estimate(values: Tensor, n_boot: int, generator: torch.Generator) -> Estimate:
    idx = _resamples(len(values), n_boot, generator, values.device)
    return Estimate(values.mean().item(), _se(values[idx].mean(1)))


def classifier_confidence(
    samples: Tensor, *, n_boot: int = N_BOOT, generator: torch.Generator | None = None
) -> Estimate:
    """Mean over images (N, 1, H, H) of the classifier's top softmax probability."""
    logits = classifier_outputs(samples, "samples")[1].double()
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    return _mean_estimate(logits.softmax(1).amax(1), n_boot, generator)


def class_histogram(
    samples: Tensor, *, n_boot: int = N_BOOT, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Fractions (10,) float64 of images (N, 1, H, H) per predicted class, and their s.e."""
    logits = classifier_outputs(samples, "samples")[1].double()
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    return _histogram(logits.argmax(1), logits.shape[1], n_boot, generator)


def _histogram(pred: Tensor, classes: int, n_boot: int, generator) -> tuple[Tensor, Tensor]:
    one_hot = torch.nn.functional.one_hot(pred, classes).double()
    idx = _resamples(len(pred), n_boot, generator, pred.device)
    return one_hot.mean(0), one_hot[idx].mean(1).std(0)


def _ratio_estimate(d_s: Tensor, d_h: Tensor, n_boot: int, generator) -> Estimate:
    i_s = _resamples(len(d_s), n_boot, generator, d_s.device)
    i_h = _resamples(len(d_h), n_boot, generator, d_s.device)
    boot = d_s[i_s].mean(1) / d_h.to(d_s.device)[i_h].mean(1)
    return Estimate((d_s.mean() / d_h.mean()).item(), _se(boot))


def nearest_neighbour_ratio(
    samples: Tensor,
    train: Tensor,
    held_out: Tensor,
    *,
    n_boot: int = N_BOOT,
    generator: torch.Generator | None = None,
) -> Estimate:
    """Samples' mean nearest-neighbour distance to ``train`` over held-out images' mean
    distance to ``train`` (RMS per pixel; items of one shape (C, H, W)). ~1: new items on the
    data; << 1: copies of training items; >> 1: off the data."""
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    _check_images(samples=samples, train=train, held_out=held_out)
    d_h = nearest_neighbour_distance(held_out, train)
    if d_h.mean() == 0:
        raise ValueError("held_out must not be copies of train items (its distance is 0)")
    return _ratio_estimate(nearest_neighbour_distance(samples, train), d_h, n_boot, generator)


def _check_images(**sets: Tensor) -> None:
    """Every set a non-empty finite batch (N, C, H, W) of one item shape."""
    shape = None
    for name, x in sets.items():
        if not isinstance(x, Tensor) or x.ndim != 4 or 0 in x.shape:
            raise ValueError(
                f"{name} must be a non-empty image batch (N, C, H, W), got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        if x.is_complex() or not torch.isfinite(x).all():
            raise ValueError(f"{name} must hold finite real numbers")
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise ValueError(f"{name} items must have shape {shape}, got {tuple(x.shape[1:])}")
        shape = tuple(x.shape[1:])


def _subset(x: Tensor, n: int, generator: torch.Generator) -> Tensor:
    return x if len(x) <= n else x[torch.randperm(len(x), generator=generator)[:n].to(x.device)]


def sample_quality(
    samples: Tensor,
    train: Tensor,
    held_out: Tensor,
    *,
    n: int = 1000,
    k: int = 3,
    n_boot: int = N_BOOT,
    generator: torch.Generator | None = None,
) -> dict:
    """Every metric above for generated images, as a flat dict of floats (and two lists).

    samples, train, held_out: images (N, 1, H, H) in [-1, 1] of one shape. Up to n of each are
    drawn without replacement (``generator``); the n training images are the reference of FD
    and precision/recall; the nearest-neighbour ratio searches all of ``train``. Keys: fd,
    fd_held_out (held-out images' FD at the same n, the value to aim for), precision, recall,
    confidence, nn_ratio, each with a ``_se`` twin; class_histogram and class_histogram_se
    (10 each); nn_distance_samples and nn_distance_held_out (mean RMS pixel distances); the
    set sizes n_samples, n_reference, n_held_out, n_train, and k.
    """
    k = _check_count("k", k, 1)
    n = _check_count("n", n, k + 1)
    n_boot, generator = _check_count("n_boot", n_boot, 2), _generator(generator)
    _check_images(samples=samples, train=train, held_out=held_out)
    for name, x in (("samples", samples), ("train", train), ("held_out", held_out)):
        if len(x) < k + 1:
            raise ValueError(f"{name} needs at least k + 1 = {k + 1} items, got {len(x)}")
    s, ref, h = (_subset(x, n, generator) for x in (samples, train, held_out))
    f_s, logits = classifier_outputs(s, "samples")
    f_r, f_h = classifier_features(ref, "train"), classifier_features(h, "held_out")
    opts = {"n_boot": n_boot, "generator": generator}
    precision, recall = precision_recall(f_s, f_r, k=k, **opts)
    d_s, d_h = nearest_neighbour_distance(s, train), nearest_neighbour_distance(h, train)
    estimates = {
        "fd": frechet_distance(f_s, f_r, **opts),
        "fd_held_out": frechet_distance(f_h, f_r, **opts),
        "precision": precision,
        "recall": recall,
        "confidence": _mean_estimate(logits.double().softmax(1).amax(1), n_boot, generator),
        "nn_ratio": _ratio_estimate(d_s, d_h, n_boot, generator),
    }
    out: dict = {}
    for key, est in estimates.items():
        out[key], out[f"{key}_se"] = est.value, est.se
    hist, hist_se = _histogram(logits.argmax(1), logits.shape[1], n_boot, generator)
    out["class_histogram"], out["class_histogram_se"] = hist.tolist(), hist_se.tolist()
    out["nn_distance_samples"], out["nn_distance_held_out"] = d_s.mean().item(), d_h.mean().item()
    out.update(n_samples=len(s), n_reference=len(ref), n_held_out=len(h), n_train=len(train), k=k)
    return out
