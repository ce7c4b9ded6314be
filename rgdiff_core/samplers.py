"""Samplers: integrate from t = 1 (noise) to t = 0 (data) on a uniform grid (docs/maths.md §1-2).

All share one signature and call the denoiser once per stage with the full NoiseState:

- ancestral: exact Gaussian step q(z_s | z_t, u = x0_hat) per component (VDM algebra),
      c = -expm1(gamma_s - gamma_t),  mean = (alpha_s / alpha_t)(1 - c) z_t + alpha_s c x0_hat,
      var = c sigma_s^2;  components with gamma_s == gamma_t do not move (bit for bit).
- ancestral_corrected: the same mean, plus the variance the plug-in step drops
      (docs/maths.md §2d): the exact kernel averages q(z_s | z_t, u) over p(u | z_t), so its
      variance is c sigma_s^2 + (alpha_s c)^2 Var(u | z_t) per component; Var(u | z_t) is the
      denoiser's `posterior_variance(state)` where it has one, else that of a Gaussian with data
      variance v (the schedule's `variances`, else 1), v sigma^2 / (alpha^2 v + sigma^2)
      = v sigmoid(gamma - log v). Exact for Gaussian data with independent components.
- euler_maruyama: reverse SDE dz = -beta (z/2 + score) dt + sqrt(beta) dW.
- heun_ode: probability-flow ODE dz/dt = -beta/2 (z + score), Heun's 2nd-order method.
- ddim, dpm2m: the probability-flow ODE by an exponential integrator in each component's own
      lambda_i = -gamma_i / 2 (docs/maths.md §2d, "Exponential integrator"), x0-prediction form
      z_s = (sigma_s / sigma_t) z_t + alpha_s (1 - e^-h) d,  h = lambda_s - lambda_t;
      ddim (1st order): d = x0_hat; dpm2m (2nd order, DPM-Solver++(2M) with x0_hat extrapolated
      linearly in t from the previous step): d = x0_hat + (h_t / 2 h_t,prev)(x0_hat - x0_prev),
      first order on the first step. Components with gamma_s == gamma_t have h = 0: a = 1, b = 0.

After the last step the output is the denoiser's estimate at t = 0. Known components
(hard conditioning) are held at their values throughout (gamma = -inf, beta = 0).
After every step the callback receives one `StepInfo` (step, steps, t, z, x0_hat, elapsed);
raising `SamplingCancelled` from it stops the run. A run that turns non-finite (too few steps for a
stiff schedule) raises `SamplingDiverged` instead of returning NaN.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .conversions import ode_drift
from .schedules import NoiseState

__all__ = [
    "sample",
    "sample_latents",
    "SAMPLERS",
    "SamplingCancelled",
    "SamplingDiverged",
    "nfe_count",
    "MAX_STEPS",
    "StepInfo",
]

MAX_STEPS = 10_000


@dataclass(frozen=True)
class StepInfo:
    """What every sampling callback receives after a step (progress bars, previews, playback).

    step: index of the step just done (0-based; `done` = step + 1 of `steps`); t: the time
    after it, where z lives; z (n, D): the whitened state after the step; x0_hat (n, D): the
    estimate the step used; elapsed: seconds since sampling began; run: the run's index within
    a sweep (0 otherwise)."""

    step: int
    steps: int
    t: float
    z: Tensor
    x0_hat: Tensor
    elapsed: float
    run: int = 0

    @property
    def done(self) -> int:
        return self.step + 1


class SamplingCancelled(RuntimeError):
    """Raised by a callback to stop sampling."""


class SamplingDiverged(SamplingCancelled, ValueError):
    """The integration turned non-finite: the step count is too small for the schedule's
    stiffness (explicit samplers blow up when h * beta is large). A SamplingCancelled, so a
    run that records its progress keeps what it had; a ValueError naming `steps`, so a caller
    that validates its arguments shows it as a message."""


def _ancestral_step(z, x0_hat, st_t: NoiseState, st_s: NoiseState, h, generator, **_):
    g_t, g_s = st_t.gamma, st_s.gamma
    moved = g_s != g_t  # also False for known components (-inf == -inf)
    diff = torch.where(moved, g_s - g_t, torch.zeros_like(g_t))
    c = -torch.expm1(diff)
    # (alpha_s / alpha_t)(1 - c) = exp(log alpha_s - log alpha_t + gamma_s - gamma_t), in log
    # space because alpha_t alone underflows for very noisy components
    log_alpha_ratio = 0.5 * (F.logsigmoid(-g_s) - F.logsigmoid(-g_t)).nan_to_num(0.0)
    mean = torch.exp(log_alpha_ratio + diff) * z + st_s.alpha * c * x0_hat
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    z_s = mean + (c * st_s.sigma_sq).clamp_min(0).sqrt() * noise
    return _hold(~moved, z, z_s)


def _ancestral_coefficients(st_t: NoiseState, st_s: NoiseState):
    """(moved, a, b, var) of the plug-in ancestral step z_s = a z + b x0_hat + sqrt(var) xi,
    with the very expressions of `_ancestral_step` (the accuracy advisor reads them too)."""
    g_t, g_s = st_t.gamma, st_s.gamma
    moved = g_s != g_t  # also False for known components (-inf == -inf)
    diff = torch.where(moved, g_s - g_t, torch.zeros_like(g_t))
    c = -torch.expm1(diff)
    log_alpha_ratio = 0.5 * (F.logsigmoid(-g_s) - F.logsigmoid(-g_t)).nan_to_num(0.0)
    return moved, torch.exp(log_alpha_ratio + diff), st_s.alpha * c, c * st_s.sigma_sq


def _posterior_variance(denoiser, process, state: NoiseState) -> Tensor:
    """Var(u_i | z_t) per component, broadcastable against (B, D): the denoiser's own
    (`posterior_variance(state)`) where it has one, else that of a Gaussian with data variance
    v_i, v sigma^2 / (alpha^2 v + sigma^2) = v sigmoid(gamma - log v) (no division, 0 where
    known), v_i from the schedule's `variances` (soft conditioning carries them), else 1."""
    own = getattr(denoiser, "posterior_variance", None)
    if callable(own):
        return own(state)
    v = getattr(getattr(process, "schedule", None), "variances", None)
    gamma = state.gamma
    if v is None:
        return torch.sigmoid(gamma)
    v = torch.as_tensor(v).to(device=gamma.device, dtype=gamma.dtype)
    return v * torch.sigmoid(gamma - v.log())


def _ancestral_corrected_step(
    z, x0_hat, st_t: NoiseState, st_s: NoiseState, h, generator, denoiser=None, process=None, **_
):
    moved, a, b, var = _ancestral_coefficients(st_t, st_s)
    # law of total variance over p(u | z_t): the plug-in step's c sigma_s^2 misses b^2 Var(u | z_t)
    var = var + b * b * _posterior_variance(denoiser, process, st_t).to(var.dtype)
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    z_s = a * z + b * x0_hat + var.clamp_min(0).sqrt() * noise
    return _hold(~moved, z, z_s)


def _euler_maruyama_step(z, x0_hat, st_t: NoiseState, st_s, h, generator, **_):
    noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
    beta, dgamma_dt = st_t.beta, st_t.dgamma_dt
    # z - h reverse_sde_drift(z, x0_hat) + sqrt(h beta) noise, its per-component coefficients
    # gathered first (gamma's shape, not (B, D)) so the batch is swept three times, not ten
    keep = 1 + h * (0.5 * beta - dgamma_dt)
    pull = h * dgamma_dt * st_t.alpha
    z_s = torch.addcmul(torch.addcmul(keep * z, pull, x0_hat), (h * beta).sqrt(), noise)
    return _hold(st_t.frozen, z, z_s)


def _heun_step(z, x0_hat, st_t: NoiseState, st_s, h, generator, denoiser, t_s, known, **_):
    d1 = ode_drift(z, x0_hat, st_t)
    z_euler = z - h * d1
    x0_s = _denoise(denoiser, z_euler, t_s, st_s, known)
    d2 = ode_drift(z_euler, x0_s, st_s)
    z_s = z - h * 0.5 * (d1 + d2)
    return _hold(st_t.frozen & st_s.frozen, z, z_s)


def _exp_coefficients(st_t: NoiseState, st_s: NoiseState):
    """(moved, a, b) of the exponential-integrator step z_s = a z_t + b d (docs/maths.md §2d):
    a = sigma_s / sigma_t, b = alpha_s (1 - e^-h) = -alpha_s expm1((gamma_s - gamma_t) / 2);
    a = 1 and b = 0 exactly where gamma_s == gamma_t (frozen, known: -inf == -inf). The
    accuracy advisor reads them too."""
    g_t, g_s = st_t.gamma, st_s.gamma
    moved = g_s != g_t
    diff = torch.where(moved, g_s - g_t, torch.zeros_like(g_t))
    # sigma_s / sigma_t in log space: sigma_t is 0 for known components (and underflows near it)
    log_sigma_ratio = 0.5 * (F.logsigmoid(g_s) - F.logsigmoid(g_t))
    a = torch.where(moved, torch.exp(log_sigma_ratio), torch.ones_like(g_t))
    return moved, a, -st_s.alpha * torch.expm1(0.5 * diff)


def _ddim_step(z, x0_hat, st_t: NoiseState, st_s: NoiseState, h, generator, **_):
    moved, a, b = _exp_coefficients(st_t, st_s)
    return _hold(~moved, z, a * z + b * x0_hat)


def dpm2m_weight(h: float, h_prev: float) -> float:
    """w of d = x0_prev + w (x0_hat - x0_prev): x0_hat extrapolated linearly in t to the middle
    of the step, w = 1 + h / (2 h_prev) (DPM-Solver++(2M) with its step ratio taken in t)."""
    return 1.0 + 0.5 * h / h_prev


def _dpm2m_step(z, x0_hat, st_t: NoiseState, st_s: NoiseState, h, generator, memory=None, **_):
    moved, a, b = _exp_coefficients(st_t, st_s)
    d = x0_hat
    if memory is not None:
        if "x0_hat" in memory:  # second order; the first step (t = 1) is ddim
            d = torch.lerp(memory["x0_hat"], x0_hat, dpm2m_weight(h, memory["h"]))
        # a copy: a denoiser may hand out one output buffer for every call
        memory.update(x0_hat=x0_hat.clone(), h=h)
    return _hold(~moved, z, a * z + b * d)


def _hold(still: Tensor, z: Tensor, z_s: Tensor) -> Tensor:
    """z where `still` (frozen or known components keep their bits), else z_s. The broadcast
    select costs as much as a step's arithmetic, so on the CPU it is skipped when nothing is
    still; on an accelerator it always runs (asking would synchronise every step)."""
    if z.device.type == "cpu" and not bool(still.any()):
        return z_s
    return torch.where(still, z, z_s)


SAMPLERS: dict[str, Callable] = {
    "ancestral": _ancestral_step,
    "ancestral_corrected": _ancestral_corrected_step,
    "euler_maruyama": _euler_maruyama_step,
    "heun_ode": _heun_step,
    "ddim": _ddim_step,
    "dpm2m": _dpm2m_step,
}


def nfe_count(method: str, steps: int) -> int:
    """Denoiser evaluations of one run (the final t = 0 estimate included); the corrected
    ancestral step reads a posterior variance, not a second evaluation."""
    return (2 * steps if method == "heun_ode" else steps) + 1


def _denoise(denoiser, z, t, state, known):
    x0_hat = denoiser(z, t, state=state)
    if known is not None:
        x0_hat = torch.where(known[0], known[1], x0_hat)
    return x0_hat


def _check_known(known, n: int, dim: int, device, dtype):
    if known is None:
        return None
    try:
        mask, values = known
    except (TypeError, ValueError) as err:
        raise ValueError("known must be a pair (mask, values)") from err
    mask = torch.as_tensor(mask, device=device).to(torch.bool).flatten()
    values = torch.as_tensor(values, device=device, dtype=dtype)
    if mask.numel() != dim:
        raise ValueError(f"known mask must have {dim} entries, got {mask.numel()}")
    if values.shape not in ((dim,), (n, dim), (1, dim)):
        raise ValueError(
            f"known values must have shape ({dim},) or ({n}, {dim}), got {tuple(values.shape)}"
        )
    if not torch.isfinite(values[..., mask]).all():
        raise ValueError("known values must be finite where the mask is set")
    if not bool(mask.any()):
        return None
    return mask, values.expand(n, dim)


def sample_latents(
    process,
    denoiser,
    n: int,
    steps: int,
    method: str = "ancestral",
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
    known=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Whitened components (n, D) of n samples; see `sample`."""
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    step_fn = SAMPLERS[method]
    known = _check_known(known, n, process.dim, process.device, dtype)
    mask = None if known is None else known[0]
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    start = time.perf_counter()
    # On an accelerator a finiteness check synchronises, so it runs every few steps there.
    every = 1 if process.device.type == "cpu" else 8
    with torch.inference_mode():
        z = process.sample_terminal(n, generator=generator, dtype=dtype)
        if known is not None:
            z = torch.where(mask, known[1], z)
        states = _grid_states(process, ts, mask, z)
        st_s = next(states)
        memory: dict = {}  # what a multistep sampler carries from one step to the next
        for k in range(steps):
            t, s = float(ts[k]), float(ts[k + 1])
            st_t, st_s = st_s, next(states)
            x0_hat = _denoise(denoiser, z, t, st_t, known)
            z = step_fn(
                z,
                x0_hat,
                st_t,
                st_s,
                t - s,
                generator,
                denoiser=denoiser,
                t_s=s,
                known=known,
                process=process,
                memory=memory,
            )
            if ((k + 1) % every == 0 or k + 1 == steps) and not _all_finite(z):
                raise _diverged(method, k, steps, s, st_t)
            if callback is not None:
                callback(StepInfo(k, steps, s, z, x0_hat, time.perf_counter() - start))
        st_0 = st_s  # t = 0
        out = _denoise(denoiser, z, 0.0, st_0, known)
        if not _all_finite(out):
            raise _diverged(method, steps - 1, steps, 0.0, st_0)
        return out


def _grid_states(process, ts: Tensor, mask, like: Tensor, chunk: int = 64):
    """The NoiseState at each time of the grid, in order; the schedule is asked for `chunk`
    times at once (one call costs about as much as a step's arithmetic at batch 64)."""
    for i in range(0, len(ts), chunk):
        state = process.noise_state(ts[i : i + chunk], known=mask, like=like)
        yield from (NoiseState(g, d) for g, d in zip(state.gamma, state.dgamma_dt, strict=True))


def _all_finite(z: Tensor) -> bool:
    """isfinite(z).all() in one reduction: min and max carry any NaN and any inf."""
    return bool(torch.isfinite(torch.stack(torch.aminmax(z))).all())


def _diverged(method: str, k: int, steps: int, t: float, state: NoiseState) -> SamplingDiverged:
    h_beta = float(state.beta.max()) / steps
    return SamplingDiverged(
        f"steps: the {method} sampler diverged at step {k + 1} of {steps} (t = {t:.3f}, "
        f"h·max β = {h_beta:.3g}); the schedule is too stiff for {steps} steps: use more "
        f"steps (stiffness(schedule)['steps_needed']), a larger softness, or the ancestral "
        f"sampler"
    )


def sample(
    process,
    denoiser,
    n: int,
    steps: int,
    method: str = "ancestral",
    generator: torch.Generator | None = None,
    callback: Callable | None = None,
    known=None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw n images (n, C, H, W) by integrating from the prior at t = 1 to t = 0.

    method: ancestral | ancestral_corrected | euler_maruyama | heun_ode | ddim | dpm2m
    (`SAMPLERS`).
    known = (mask (D,) bool, values (D,) or
    (n, D) whitened) fixes components. callback(StepInfo) after each step.
    """
    u = sample_latents(process, denoiser, n, steps, method, generator, callback, known, dtype)
    with torch.inference_mode():
        return process.decode(u)
