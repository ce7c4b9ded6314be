"""The end of the process at t = 1: how far q(z_1 | x) is from the prior N(0, I) that every
sampler starts from, and the noised-end target that makes it close (docs/maths.md §2b).

The prior term, in nats per image, exact from the data's second moments E[u_i^2]:

    L_T = E_x KL(q(z_1 | x) || N(0, I))
        = 1/2 sum_i [ alpha_i^2(1) E[u_i^2] + sigma_i^2(1) - 1 - log sigma_i^2(1) ]
        = 1/2 sum_i [ alpha_i^2(1) (E[u_i^2] - 1) - log sigmoid(gamma_i(1)) ]

(sigma^2 - 1 = -alpha^2; log sigma^2 = logsigmoid(gamma), stable at both ends). L_T decreases
as any gamma_i(1) grows, so the smallest soft-conditioning target gamma_noise with
L_T <= AUTO_TARGET (half the bound L_T_TARGET) is found by bisection ("auto", the default
target of ScheduleSpec).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .schedules import soft_conditioning_state

__all__ = [
    "L_T_TARGET",
    "AUTO_TARGET",
    "GAMMA_NOISE_MAX",
    "prior_term",
    "prior_term_from_moments",
    "auto_gamma_noise",
    "whitened_second_moments",
]

L_T_TARGET = 0.1  # nats per image: the prior term every default and preset keeps below
# auto aims at half the bound: it is fitted on the statistics' items (specs.N_STATS), and the
# whole training split, or held-out data, can carry a little more signal
AUTO_TARGET = 0.05
GAMMA_NOISE_MAX = 30.0  # the soft-conditioning schedule's own bound on gamma_noise


def prior_term_from_moments(gamma_1: Tensor, u_sq: Tensor) -> float:
    """L_T in nats per image from gamma_i(1) ((D,) or broadcastable) and E[u_i^2] (D,)."""
    g = torch.as_tensor(gamma_1, dtype=torch.float64).expand(u_sq.shape)
    alpha_sq = torch.sigmoid(-g)
    per = alpha_sq * (u_sq.double() - 1) - torch.nn.functional.logsigmoid(g)
    return float(0.5 * per.sum())


def whitened_second_moments(process, data: Tensor, batch: int = 1024) -> Tensor:
    """E[u_i^2] (D,) float64 over the images `data` (N, C, H, W); ValueError for bad data."""
    if not isinstance(data, Tensor) or data.ndim != 4 or tuple(data.shape[1:]) != process.shape:
        shape = tuple(data.shape) if isinstance(data, Tensor) else type(data).__name__
        raise ValueError(f"data must be images of shape (N, {process.shape}), got {shape}")
    if data.shape[0] == 0:
        raise ValueError("data must hold at least one image, got an empty batch")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data must be finite (it holds NaN or Inf)")
    total = torch.zeros(process.dim, dtype=torch.float64)
    with torch.inference_mode():
        for i in range(0, data.shape[0], batch):
            u = process.encode(data[i : i + batch].to(process.device)).double().cpu()
            total += (u * u).sum(0)
    return total / data.shape[0]


def prior_term(process, data: Tensor) -> float:
    """L_T = E_x KL(q(z_1 | x) || N(0, I)) in nats per image, exact from the second moments of
    the whitened data (module docstring)."""
    like = torch.zeros(1, dtype=torch.float64, device=process.device)
    state = process.noise_state(1.0, like=like)
    return prior_term_from_moments(
        state.gamma.cpu().reshape(-1), whitened_second_moments(process, data)
    )


def auto_gamma_noise(
    labels: Tensor,
    softness: float,
    gamma_denoise: float,
    variances: Tensor,
    clip: bool,
    u_sq: Tensor,
    target: float = AUTO_TARGET,
) -> float:
    """The smallest gamma_noise (to 0.01) whose soft-conditioning schedule has L_T <= target,
    or GAMMA_NOISE_MAX when even that is not enough (the caller shows L_T then)."""
    labels = torch.as_tensor(labels, dtype=torch.float64)
    log_v = torch.as_tensor(variances, dtype=torch.float64).log()
    inv_s = 0.0 if math.isinf(softness) else 1.0 / softness
    one = torch.ones((), dtype=torch.float64)

    def l_t(gamma_noise: float) -> float:
        state = soft_conditioning_state(labels, log_v, inv_s, one, gamma_denoise, gamma_noise, clip)
        return prior_term_from_moments(state.gamma, u_sq)

    lo, hi = gamma_denoise + 0.01, GAMMA_NOISE_MAX
    if l_t(hi) > target:
        return hi
    if l_t(lo) <= target:
        return lo
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if l_t(mid) <= target else (mid, hi)
    return round(hi, 2) if l_t(round(hi, 2)) <= target else hi
