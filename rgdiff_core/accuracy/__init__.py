"""Accuracy advisor: what a sampler makes of Gaussian data, exactly (docs/maths.md §2d).

For data u ~ N(mu, Sigma) in whitened components the exact denoiser is affine in z,

    x0_hat(z) = G z + o,   G = Sigma A M^-1,   M = A Sigma A + diag(sigma^2),   o = mu - G A mu,

(A = diag(alpha); known components: G row e_i, o_i = 0), so every sampler step is affine in z
plus independent Gaussian noise, z_s = K z_t + f + n * xi, and the mean m and covariance C of z
follow exactly, m <- K m + f, C <- K C K^T + diag(n^2), from z_1 ~ N(0, I) to the output
x0_hat(z_0) ~ N(G_0 m + o_0, G_0 C G_0^T). Per step, with b the coefficient of x0_hat:

    ancestral            K = diag(a) + diag(b) G_t,  f = b o_t,  n^2 = c sigma_s^2
    ancestral_corrected  the same K, f;  n^2 = c sigma_s^2 + b^2 diag(P_t),  P_t = Cov(u | z_t)
    euler_maruyama       a = 1 + h (beta/2 - gamma'),  b = h gamma' alpha,  n^2 = h beta
    heun_ode             z_s = z - h/2 (d_t(z) + d_s(z - h d_t(z))),  d(z) = Q z + q with
                         Q = diag((gamma' - beta) / 2) - diag(gamma' alpha / 2) G;  no noise
    ddim                 K = diag(a) + diag(b) G_t,  f = b o_t  (a = sigma_s / sigma_t,
                         b = alpha_s (1 - e^-h), samplers._exp_coefficients);  no noise
    dpm2m                z_s = a z_t + b (x0_prev + w (x0_t - x0_prev)), x0_j = G_j z_j + o_j:
                         two steps back, so z is carried as an affine map of the start

(a, b, c as in `samplers`; the corrected step's diag(P_t) is what GaussianDenoiser's
`posterior_variance` returns). The grid, the float32 noise states and the held components
(ancestral, ddim, dpm2m: gamma_s == gamma_t; Euler-Maruyama: frozen at t; Heun: frozen at t
and s) are those of `samplers.sample_latents`, so the prediction is the sampler's, not the
SDE's.

Routes, same answer: diagonal (Sigma diagonal: everything elementwise, O(D) per step, a
vectorised scan); eigen (every gamma_i equal at every grid time and nothing known, e.g. a scalar
schedule: all coefficients are scalars per step, so the recursion is diagonal in Sigma's
eigenbasis after one eigh; not for the corrected step, whose diag(P_t) is not isotropic); dense
(one Cholesky of M per grid time, shared by every method of a call; only the rows of K that
move are formed and only those rows and columns of C updated, so clipped schedules with narrow
windows cost ~D^3/3 per step and the equal-SNR one ~6 D^3).

Reported (`Accuracy`): the image-space total variance ratio sum_i s_i^2 Ĉ_ii / sum_i s_i^2
Sigma_ii (the trace of Cov(x) under x = U^T (s u + m); the issue's "sampled/true total
variance"), the same without weights (whitened components), and the component ratio
Ĉ_ii / Sigma_ii farthest from 1 in log. A perfect sampler still reports slightly under 1: its
output E[u | z_0] lacks the posterior variance left at t = 0 (e^gamma(0) relative, ~1e-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..denoisers.analytic import GaussianDenoiser
from ..samplers import MAX_STEPS, SAMPLERS, _check_known
from ..schedules import stiffness
from .propagate import Gaussian, dense_route, diagonal_route, grid_states

__all__ = [
    "Gaussian",
    "Accuracy",
    "EXPLICIT",
    "gaussian_of",
    "diagonal_gaussian",
    "sampled_gaussian",
    "accuracy",
    "accuracies",
    "steps_for_accuracy",
]

EXPLICIT = ("euler_maruyama", "heun_ode")  # conditionally stable: stiffness()'s bound applies
# deterministic: their variance error changes sign at small step counts and can pass by chance
SIGNED = ("heun_ode", "ddim", "dpm2m")


@dataclass(frozen=True)
class Accuracy:
    """What a sampler makes of a Gaussian at a step count (ratios sampled / true, over the
    components not known)."""

    method: str
    steps: int
    route: str  # diagonal | eigen | dense
    variance_ratio: float  # image-space total variance, sum s_i^2 C_ii / sum s_i^2 Sigma_ii
    whitened_ratio: float  # the same unweighted (whitened components)
    worst_ratio: float  # C_ii / Sigma_ii of the component farthest from 1 (in log)
    worst_component: int
    mean_error: float  # sum s_i^2 (m_i - mu_i)^2 / sum s_i^2 Sigma_ii: squared bias per variance


def diagonal_gaussian(process, images: Tensor, items: int = 1000) -> tuple[Tensor, Tensor]:
    """(mean (D,), var (D,)) float64 on the CPU of the whitened components of the first `items`
    images: the independent-components Gaussian the app's step advice uses (O(D) per step)."""
    with torch.no_grad():
        u = process.encode(images[:items].to(process.device)).double().cpu()
    return u.mean(0), u.var(0)


def gaussian_of(process, data, jitter: float = 1e-4) -> Gaussian:
    """The Gaussian the exact denoiser assumes, in whitened components of `process`: from images
    (N, C, H, W) as `GaussianDenoiser.fit` fits it (their mean and covariance, `jitter`), from a
    GaussianDenoiser, from a pair (mean (D,), cov (D, D) or (D,)), or a Gaussian (checked)."""
    if isinstance(data, GaussianDenoiser):
        mine, its = process.prior, data.process.prior
        if data.process.dim != process.dim or not (
            torch.equal(mine.std.cpu(), its.std.cpu())
            and torch.equal(mine.mean.cpu(), its.mean.cpu())
        ):
            # its mu and Sigma live in its own process's whitened components
            raise ValueError("data: a GaussianDenoiser of another process (dimension or prior)")
        cov = data.var if data.diagonal else data.sigma_u
        return Gaussian(data.mu.double().cpu(), cov.double().cpu())
    if isinstance(data, Gaussian):
        data = (data.mean, data.cov)
    if isinstance(data, tuple):
        return _checked(process.dim, *data)
    if not isinstance(data, Tensor):
        raise ValueError(
            "data must be images (N, C, H, W), a GaussianDenoiser, a Gaussian or a pair "
            f"(mean, cov); got {type(data).__name__}"
        )
    return gaussian_of(process, GaussianDenoiser.fit(process, data, jitter=jitter))


def _checked(dim: int, mean, cov) -> Gaussian:
    mean = torch.as_tensor(mean, dtype=torch.float64).cpu().flatten()
    cov = torch.as_tensor(cov, dtype=torch.float64).cpu()
    if mean.shape != (dim,) or not torch.isfinite(mean).all():
        raise ValueError(f"mean must be {dim} finite numbers, got shape {tuple(mean.shape)}")
    if cov.shape not in ((dim,), (dim, dim)) or not torch.isfinite(cov).all():
        raise ValueError(f"cov must be finite, of shape ({dim},) or ({dim}, {dim})")
    variances = cov.diagonal() if cov.ndim == 2 else cov
    if variances.min() < -1e-9 * max(float(variances.abs().mean()), 1e-300):
        raise ValueError("cov must have non-negative variances")
    if cov.ndim == 2:
        scale = float(cov.diagonal().mean())
        if (cov - cov.T).abs().max() > 1e-6 * scale:
            raise ValueError("cov must be symmetric")
        cov = 0.5 * (cov + cov.T)  # rounding only, as GaussianDenoiser does
        # the denoiser's own test for its elementwise route, so both take the same one
        if (cov - torch.diag(cov.diagonal())).abs().max() <= 1e-9 * scale:
            cov = cov.diagonal().clone()
    return Gaussian(mean, cov)


# ---------------------------------------------------------------- public entry points


def _run(process, gaussian, steps, methods, known, dtype, full: bool):
    """{method: (route, output mean (D,), output cov (D, D) if full else (D,))}."""
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    for method in methods:
        if method not in SAMPLERS:
            raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    g = gaussian_of(process, gaussian)
    checked = _check_known(known, 1, process.dim, process.device, dtype)
    mask = None if checked is None else checked[0]
    known_cpu = None if mask is None else mask.cpu()
    values = None if checked is None else checked[1][0].double().cpu()
    grid = grid_states(process, steps, mask, dtype)
    out = {}
    if g.diagonal:
        for method, (m, c) in diagonal_route(g, grid, methods, known_cpu, values).items():
            out[method] = ("diagonal", m, c)  # independent components stay independent
        return out
    _, gamma, dgamma = grid
    shared = known_cpu is None and bool(
        (gamma == gamma[:, :1]).all() and (dgamma == dgamma[:, :1]).all()
    )
    eigen = [m for m in methods if shared and m != "ancestral_corrected"]
    if eigen:
        lam, vec = torch.linalg.eigh(g.cov)
        rotated = Gaussian(vec.T @ g.mean, lam.clamp_min(0))
        for method, (m, c) in diagonal_route(rotated, grid, eigen, None, None, True).items():
            cov = (vec * c) @ vec.T if full else (vec * vec) @ c
            out[method] = ("eigen", vec @ m, cov)
    dense = [m for m in methods if m not in eigen]
    if dense:
        for method, (m, c) in dense_route(g, grid, dense, known_cpu, values, full).items():
            out[method] = ("dense", m, c)
    return out


def sampled_gaussian(
    process, gaussian, steps: int, method: str = "ancestral", *, known=None, dtype=torch.float32
) -> Gaussian:
    """The exact distribution N(mean, cov) (whitened, cov (D, D); (D,) when Sigma is diagonal)
    of `samplers.sample_latents(process, GaussianDenoiser of gaussian, n, steps, method,
    known=known, dtype=dtype)`. gaussian: anything `gaussian_of` takes."""
    _, mean, cov = _run(process, gaussian, steps, (method,), known, dtype, full=True)[method]
    return Gaussian(mean, cov)


def accuracies(
    process, gaussian, steps: int, methods=tuple(SAMPLERS), *, known=None, dtype=torch.float32
) -> dict[str, Accuracy]:
    """`accuracy` for several methods in one pass (the dense route shares its gains)."""
    methods = tuple(methods)
    g = gaussian_of(process, gaussian)
    runs = _run(process, g, steps, methods, known, dtype, full=False)
    truth = _truth(g, known, process)
    weight = process.prior.std.double().cpu() ** 2
    return {m: _report(m, steps, *runs[m], truth, weight) for m in methods}


def accuracy(
    process, gaussian, steps: int, method: str = "ancestral", *, known=None, dtype=torch.float32
) -> Accuracy:
    """How `method` at `steps` steps reproduces the Gaussian (whitened mean (D,), cov (D, D)
    or (D,); or images / a GaussianDenoiser, see `gaussian_of`), exactly: see `Accuracy`."""
    return accuracies(process, gaussian, steps, (method,), known=known, dtype=dtype)[method]


def _truth(g: Gaussian, known, process):
    """(free mask, mean, variances) of the target: u, or u given its known components."""
    d = g.mean.numel()
    checked = _check_known(known, 1, d, process.device, torch.float64)
    if checked is None:
        return torch.ones(d, dtype=torch.bool), g.mean, g.variances
    mask, values = checked[0].cpu(), checked[1][0].cpu()
    free = ~mask
    if g.diagonal:
        return free, g.mean, g.cov
    s_fk, s_kk = g.cov[free][:, mask], g.cov[mask][:, mask]
    gain = torch.linalg.solve(s_kk, s_fk.T).T
    mean, var = g.mean.clone(), g.cov.diagonal().clone()
    mean[free] += gain @ (values[mask] - g.mean[mask])
    var[free] -= (gain * s_fk).sum(1)
    return free, mean, var.clamp_min(0)


def _report(method, steps, route, mean, var, truth, weight) -> Accuracy:
    free, true_mean, true_var = truth
    var = var.diagonal() if var.ndim == 2 else var
    w, v, tv = weight[free], var[free], true_var[free]
    ratio = v / tv
    log_err = torch.where(tv > 0, ratio.log().abs().nan_to_num(math.inf), -1.0)
    worst = int(log_err.argmax())
    return Accuracy(
        method=method,
        steps=steps,
        route=route,
        variance_ratio=float((w * v).sum() / (w * tv).sum()),
        whitened_ratio=float(v.sum() / tv.sum()),
        worst_ratio=float(ratio[worst]),
        worst_component=int(free.nonzero().flatten()[worst]),
        mean_error=float((w * (mean[free] - true_mean[free]) ** 2).sum() / (w * tv).sum()),
    )


def steps_for_accuracy(
    process,
    data,
    *,
    method: str = "ancestral",
    tol: float = 0.02,
    max_steps: int = 10_000,
    known=None,
    dtype=torch.float32,
) -> int:
    """The smallest step count at which `method` with the exact Gaussian denoiser gives an
    image-space total variance ratio within `tol` of 1 (data: images, a GaussianDenoiser, a
    Gaussian or (mean, cov); see `gaussian_of`). Explicit samplers (EXPLICIT) start at
    stiffness(schedule)["steps_needed"], the ancestral ones at 1. Found by doubling, then
    bisection whose trial points are interpolated in 1/steps (the plug-in steps' bias is first
    order) and fall back to the midpoint whenever a trial fails to halve the bracket; it assumes
    that beyond the first passing count the error does not grow again. For the deterministic
    samplers (SIGNED), whose error crosses zero on its way from under- to over-dispersion, a
    count is kept only when 1, 1.5 and 2 times it pass too (else the search goes on above the
    largest that failed), so the answer is where the error stays within tol.
    Raises ValueError (naming tol and max_steps) when even max_steps is not enough."""
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
        raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
    if (
        not isinstance(max_steps, int)
        or isinstance(max_steps, bool)
        or not 1 <= max_steps <= MAX_STEPS
    ):
        raise ValueError(f"max_steps must be an integer in [1, {MAX_STEPS}], got {max_steps!r}")
    g = gaussian_of(process, data)
    floor = stiffness(process.schedule)["steps_needed"] if method in EXPLICIT else 1
    if floor > max_steps:
        raise ValueError(
            f"max_steps: {method} needs at least {floor} steps to be stable here "
            f"(stiffness steps_needed), more than max_steps = {max_steps}"
        )
    errors: dict[int, float] = {}

    def error(n: int) -> float:
        if n not in errors:
            ratio = accuracy(process, g, n, method, known=known, dtype=dtype).variance_ratio
            errors[n] = abs(ratio - 1) if math.isfinite(ratio) else math.inf
        return errors[n]

    search = (error, errors, max_steps, tol, method)
    hi = _first_pass(None, floor, *search)
    while method in SIGNED:
        failed = [n for n in (hi + 1, -(-3 * hi // 2), 2 * hi) if n <= max_steps and error(n) > tol]
        if not failed:
            break
        hi = _first_pass(failed[-1], min(2 * failed[-1], max_steps), *search)
    return hi


def _first_pass(lo: int | None, hi: int, error, errors, max_steps: int, tol: float, method: str):
    """The first passing count above lo (failing, or None): doubling from hi, then bisection."""
    while error(hi) > tol:
        if hi >= max_steps:
            raise ValueError(
                f"tol = {tol} is not reached within max_steps = {max_steps}: {method}'s total "
                f"variance ratio is off by {error(hi):.3g} at {hi} steps; raise max_steps or tol"
            )
        lo, hi = hi, min(2 * hi, max_steps)
    if lo is None:
        return hi
    width = None
    while hi - lo > 1:
        halved = width is None or hi - lo <= width / 2
        width = hi - lo
        mid = _interpolate(lo, hi, errors, tol) if halved else (lo + hi) // 2
        if error(mid) <= tol:
            hi = mid
        else:
            lo = mid
    return hi


def _interpolate(lo: int, hi: int, errors: dict[int, float], tol: float) -> int:
    """Where the error crosses tol, linear in 1/steps between lo and hi, kept inside."""
    e_lo, e_hi = errors[lo], errors[hi]
    if not (math.isfinite(e_lo) and e_lo > e_hi):
        return (lo + hi) // 2
    x = 1 / lo + (e_lo - tol) / (e_lo - e_hi) * (1 / hi - 1 / lo)
    return min(max(round(1 / x), lo + 1), hi - 1)
