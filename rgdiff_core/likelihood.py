"""Likelihood: the negative ELBO of images in bits per dimension (docs/maths.md §2c).

Each whitened component u_i = (c_i - m_i) / s_i is a 1-D variational diffusion model with
z_t = alpha u + sigma eps (alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma)), so per image,
in nats,

    -ELBO(u) = L_T + L_diffusion + L_0
    L_T         = 1/2 sum_i [alpha_i^2(1) u_i^2 + sigma_i^2(1) - 1 - log sigma_i^2(1)]
    L_diffusion = 1/2 int_0^1 sum_i gamma_i'(t) e^{-gamma_i(t)} E (u_i - x0_hat_i(z_t, t))^2 dt
    L_0         = E[-log N(u; z_0 / alpha_0, e^{gamma_0})] = 1/2 sum_i (log 2 pi + gamma_i(0) + 1)

L_T is the exact KL(q(z_1 | u) || N(0, I)) of each image (not sampled; its mean over the images
is terminal.prior_term, docs/maths.md §2b). L_0 is the decoder
p(u | z_0) = N(z_0 / alpha_0, sigma_0^2 / alpha_0^2): with z_0 / alpha_0 - u = e^{gamma_0 / 2} eps,
-log p = 1/2 (log 2 pi + gamma_0 + eps^2), whose expectation is used (exact, no noise).
Components with gamma_i' = 0 (frozen by the clip) add nothing to L_diffusion.

Changes of variable: c = s u + m adds sum_i log s_i, the orthonormal basis adds 0, so

    bpd = (L_T + L_diffusion + L_0 + sum_i log s_i) / (D ln 2)

bounds -log2 p(x) / D of the continuous density of x on the [-1, 1] scale. For 8-bit images the
caller passes uniformly dequantised x = x_8bit + U(-1/255, 1/255) (256 levels -1 + 2k/255, bins
of width 2/255); then bpd_8bit = bpd + log2(127.5) bounds the discrete -log2 P / D and equals the
usual figure for pixels in [0, 256) with unit bins.

gamma floor. Where gamma_i(t) < GAMMA_FLOOR (-30) the process is evaluated with gamma floored
there (dgamma/dt = 0): u - x0_hat ~ e^{gamma/2} cannot be resolved against float64 rounding
of u much below that, and every library denoiser clamps gamma at -30 anyway. For the exact
denoiser the floored bound differs from the unfloored one by 1/2 sum_i log(1 + e^-30 / v_i).

Estimator of L_diffusion (z, x0_hat and every sum in float64; a network runs in its own dtype
and its v-prediction is combined with z in float64):
- t by stratified importance sampling, independently for each image: n_t strata of the image's
  proposal CDF, t_k = F^-1((k + U_k) / n_t). The proposal is (1 - RHO) of the integrand
  expected for this image under a diagonal Gaussian of variances v_i with its exact denoiser,
  gamma_i' a (u_i^2 + a v_i^2) / (1 + a v_i)^2 with a = e^-gamma_i (it follows each
  component's window, however narrow the softness makes it), plus RHO spread equally over the
  moving components (so none is starved). Its mass on each of GRID cells is a difference of
  a closed-form antiderivative, and p is piecewise constant on the cells, so f / p is unbiased
  whatever the data and denoiser.
- antithetic noise: each (image, t) uses eps and -eps, which cancels the error's linear part.
- control variate: e^-gamma (u - x0_hat)^2 -> eps^2 as gamma -> -inf, so c_i (eps_i^2 - 1)
  (mean 0) is subtracted with c_i = (a v_i / (1 + a v_i))^2, the coefficient that removes the
  noise exactly for a Gaussian component of variance v_i; this is the chi-square noise of the
  nearly clean end, otherwise the largest part of the variance.
v_i: the soft-conditioning schedule's data variances (N_STATS training items), else the batch's.
stderr is the Monte-Carlo standard error of bpd for these images (what decides whether two
bounds on the same images differ), from second differences across each image's strata (a
trend across strata is not counted as noise; curvature left over makes it conservative; nan
for n_t = 1). stderr_data is the spread of the per-image estimates over sqrt(N): the error of
bpd as an estimate of the population's value (data and Monte Carlo; nan for one image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .schedules import NoiseState
from .terminal import prior_term

__all__ = ["ELBO", "elbo", "DEFAULT_N_T", "GAMMA_FLOOR"]

DEFAULT_N_T = 64  # strata in t; stderr ~0.003 bits/dim on 8x8 Gaussian fields (tests)
GAMMA_FLOOR = -30.0  # gamma is floored here for the bound (module docstring)
RHO = 0.25  # share of the proposal that gives every moving component equal mass
GRID = 2048  # proposal cells on [0, 1]
LOG2_127_5 = math.log2(127.5)  # dequantisation: bins of width 2/255 on [-1, 1]


@dataclass(frozen=True)
class ELBO:
    """Negative ELBO of n images. bpd, bpd_8bit, stderr, stderr_data in bits per dimension;
    prior (L_T), diffusion, reconstruction (L_0) and log_scale (sum_i log s_i) in nats per
    image (means over the images), so bpd = (prior + diffusion + reconstruction + log_scale)
    / (D ln 2)."""

    bpd: float
    stderr: float  # Monte-Carlo standard error for these images
    stderr_data: float  # also over images: bpd as an estimate of the population's
    prior: float
    diffusion: float
    reconstruction: float
    log_scale: float
    bpd_8bit: float  # bpd + log2(127.5); valid when x was uniformly dequantised from 8 bits
    n: int
    n_t: int


def elbo(
    process,
    denoiser,
    x: Tensor,
    *,
    n_t: int = DEFAULT_N_T,
    generator: torch.Generator | None = None,
    batch: int = 256,
) -> ELBO:
    """The negative ELBO of images x (N, C, H, W) on the [-1, 1] scale (module docstring).

    denoiser: (z (B, D), t (B,), state=NoiseState) -> x0_hat (B, D). n_t: strata in t per
    image (2 n_t denoiser rows per image, antithetic). batch: rows per denoiser call.
    """
    _check_args(process, x, n_t, batch, generator)
    device = process.device
    u = process.encode(x.to(device=device, dtype=torch.float64)).to(torch.float64)
    n, d = u.shape
    v = _variances(process, u)
    prior = _prior_terms(process, x, u)
    recon = 0.5 * float((math.log(2 * math.pi) + _states(process, torch.zeros(1), d)[0] + 1).sum())
    log_scale = float(process.prior.std.double().log().sum())
    with torch.no_grad():
        rates = _diffusion(process, denoiser, u, v, n_t, batch, generator)  # (n_t, N)
    diffusion = rates.mean(0)
    to_bits = d * math.log(2)
    per_image = (prior + diffusion + recon + log_scale) / to_bits
    bpd = float(per_image.mean())
    # images are independent draws (own t offsets and noise), so the MC variances add over
    # images, and the spread of per-image estimates covers data and MC together
    stderr = math.sqrt(float(_stratified_var(rates).sum())) / (n_t * n) / to_bits
    stderr_data = math.sqrt(float(per_image.var()) / n) if n > 1 else math.nan
    return ELBO(
        bpd=bpd,
        stderr=stderr,
        stderr_data=stderr_data,
        prior=float(prior.mean()),
        diffusion=float(diffusion.mean()),
        reconstruction=recon,
        log_scale=log_scale,
        bpd_8bit=bpd + LOG2_127_5,
        n=n,
        n_t=n_t,
    )


def _check_args(process, x, n_t, batch, generator) -> None:
    shape = tuple(process.shape)
    want = f"(N, {', '.join(map(str, shape))}) with N >= 1"
    if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape {want}, got {got}")
    if x.shape[0] < 1:
        raise ValueError(f"x must hold at least one image: shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum()) if x.is_floating_point() else "non-float"
        raise ValueError(f"x must hold finite floating-point values, got {bad} that are not")
    for name, value, low in (("n_t", n_t, 1), ("batch", batch, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")


def _variances(process, u: Tensor) -> Tensor:
    """v_i, the data variance of each whitened component, for the proposal and the control
    variate only (any positive value keeps the estimator unbiased): the soft-conditioning
    schedule's (fitted on N_STATS training items), else the batch's, else 1."""
    n, d = u.shape
    v = getattr(process.schedule, "variances", None)
    if v is not None:
        v = torch.as_tensor(v, dtype=torch.float64, device=u.device)
    elif n > 1:
        v = u.var(0)
    else:
        v = torch.ones(d, dtype=torch.float64, device=u.device)
    return v.clamp_min(1e-12 * float(v.mean()) + 1e-300)  # log v finite


def _states(process, t: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """(gamma, dgamma/dt) at times t (K,), float64 (K, D), gamma floored at GAMMA_FLOOR (frozen
    there)."""
    t = t.to(device=process.device, dtype=torch.float64)
    state = process.noise_state(t, like=t)
    gamma = state.gamma.expand(t.shape[0], d)
    dgamma = state.dgamma_dt.expand(t.shape[0], d)
    floored = gamma <= GAMMA_FLOOR
    gamma = torch.where(floored, torch.full_like(gamma, GAMMA_FLOOR), gamma)
    return gamma, torch.where(floored, torch.zeros_like(dgamma), dgamma)


def _prior_terms(process, x: Tensor, u: Tensor) -> Tensor:
    """L_T of each image (N,), nats. Their mean is terminal.prior_term over x (the exact
    E_x KL from second moments); an image's own KL differs from it only by
    1/2 sum_i alpha_i^2(1) (u_i^2 - E[u_i^2]), the part that varies between images."""
    gamma_1 = _states(process, torch.ones(1), u.shape[1])[0]
    u_sq = u * u
    spread = 0.5 * (torch.sigmoid(-gamma_1) * (u_sq - u_sq.mean(0))).sum(1)
    return prior_term(process, x) + spread


def _proposal(process, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Each image's proposal: CDF at the GRID + 1 cell edges (N, GRID + 1) and density per
    cell (N, GRID), float64, from the expected integrand of a diagonal Gaussian (variances v)
    and its exact denoiser, (1 - RHO) of it, plus RHO shared equally by the moving components.

    Per component, with a = e^-gamma, that integrand is gamma' a (u^2 + a v^2) / (1 + a v)^2
    = -d/dt K(a), K = log(1 + a v) - (u^2 - v) / (v (1 + a v)), so each cell's mass is a
    difference of K at its edges: exact, as gamma is continuous and non-decreasing.
    """
    n, d = u.shape
    edges = torch.linspace(0, 1, GRID + 1, dtype=torch.float64)
    snr = torch.exp(-_states(process, edges, d)[0]).to(u.device)  # (GRID + 1, D)
    av = snr * v
    # defensive part: softplus(log v - gamma) = log(1 + a v) is K at u^2 = v, normalised per
    # component, so every moving component gets RHO / (number moving) of each image's draws
    ref = torch.log1p(av)
    whole = ref[0] - ref[-1]
    weight = torch.where(whole > 0, 1 / whole, torch.zeros_like(whole))
    shared = _masses((ref * weight).sum(1, keepdim=True).T)  # (1, GRID)
    rows = max(1, int(2e7) // ((GRID + 1) * d))
    own = torch.cat(
        [
            _masses((torch.log1p(av) - (uu[:, None] ** 2 - v) / (v * (1 + av))).sum(-1))
            for uu in u.split(rows)
        ]
    )  # (N, GRID)
    density = (1 - RHO) * own + RHO * shared
    # a component that never moves adds nothing, so where no mass exists any proposal will do
    density = torch.where(density.sum(1, keepdim=True) > 0, density, torch.ones_like(density))
    density = density.cpu() * GRID / density.sum(1, keepdim=True).cpu()
    cdf = torch.cat([torch.zeros(n, 1, dtype=torch.float64), (density / GRID).cumsum(1)], 1)
    return cdf / cdf[:, -1:], density


def _masses(k: Tensor) -> Tensor:
    """Normalised cell masses (rows, GRID) from a decreasing K at the edges (rows, GRID + 1)."""
    mass = (k[:, :-1] - k[:, 1:]).clamp_min(0)
    total = mass.sum(1, keepdim=True)
    return torch.where(total > 0, mass / total, torch.zeros_like(mass))


def _sample_times(cdf: Tensor, density: Tensor, n_t: int, generator):
    """Stratified draws t_kn = F_n^-1((k + U_kn) / n_t), independent for every image n, and
    their proposal densities p_n(t_kn), (n_t, N) each."""
    n = cdf.shape[0]
    device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.rand(n, n_t, generator=generator, device=device, dtype=torch.float64).cpu()
    q = (torch.arange(n_t, dtype=torch.float64) + offsets) / n_t
    cell = (torch.searchsorted(cdf, q, right=True) - 1).clamp(0, GRID - 1)
    start, end = cdf.gather(1, cell), cdf.gather(1, cell + 1)
    within = ((q - start) / (end - start)).clamp(0, 1)
    t = ((cell + within) / GRID).clamp(0, 1)
    return t.T.contiguous(), density.gather(1, cell).T.contiguous()


def _diffusion(process, denoiser, u, v, n_t, batch, generator) -> Tensor:
    """Importance-weighted L_diffusion draws (n_t, N): row k is stratum k for every image."""
    n, d = u.shape
    cdf, density = _proposal(process, u, v)
    t, p = _sample_times(cdf, density, n_t, generator)  # (n_t, N) each
    rates = torch.empty(n_t * n, dtype=torch.float64)
    log_v = v.log()
    gen_device = generator.device if generator is not None else torch.device("cpu")
    pairs = max(batch // 2, 1)
    for start in range(0, n_t * n, pairs):
        idx = torch.arange(start, min(start + pairs, n_t * n))
        k, img = idx // n, idx % n
        t_rows, p_rows = t[k, img], p[k, img]
        gamma, dgamma = _states(process, t_rows, d)
        eps = torch.randn(idx.numel(), d, generator=generator, device=gen_device, dtype=u.dtype)
        eps = eps.to(u.device)
        alpha, sigma = torch.sigmoid(-gamma).sqrt(), torch.sigmoid(gamma).sqrt()
        clean = alpha * u[img]
        z = torch.cat([clean + sigma * eps, clean - sigma * eps])  # antithetic pair
        state = NoiseState(gamma.repeat(2, 1), dgamma.repeat(2, 1))
        x0_hat = denoiser(z, t_rows.repeat(2).to(z), state=state).to(torch.float64)
        err_sq = ((u[img].repeat(2, 1) - x0_hat) ** 2).view(2, -1, d).mean(0)
        weight = torch.sigmoid(log_v - gamma) ** 2  # control-variate coefficient
        # e^-gamma only where the component moves: frozen ones add exactly 0
        scaled = torch.exp(-gamma) * err_sq - weight * (eps * eps - 1)
        term = torch.where(dgamma != 0, dgamma * scaled, torch.zeros_like(scaled))
        rates[idx] = 0.5 * term.sum(1).cpu() / p_rows
    return rates.view(n_t, n)


def _stratified_var(draws: Tensor) -> Tensor:
    """Estimate of sum_k Var(Y_k) per column of draws (n_t, N), one draw Y_k per independent
    stratum: sum_k (Y_k-1 - 2 Y_k + Y_k+1)^2 / 6, reflected at the ends (Y_-1 = Y_1). Each term
    has mean Var Y for strata of equal variance, and a linear trend across strata drops out
    (the strata's means differ; plain pairs would count that as noise); reflection keeps the
    end strata, where the proposal fits worst, fully counted. nan for a single stratum."""
    k = draws.shape[0]
    if k < 2:
        return torch.full(draws.shape[1:], math.nan, dtype=draws.dtype)
    padded = torch.cat([draws[1:2], draws, draws[-2:-1]])
    second = padded[:-2] - 2 * padded[1:-1] + padded[2:]
    return (second**2).sum(0) / 6
