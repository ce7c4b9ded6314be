"""Noise schedules: gamma(t) = -log SNR of the OU process, scalar or one per component.

Conventions (docs/maths.md §1-2): t = 0 is data, t = 1 is noise; gamma increases with t;
alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma), beta = sigma^2 * dgamma/dt.
Every schedule gives gamma(t) and dgamma_dt(t) in closed form.

Soft conditioning (labels l_i, lower label = generated first, softness s, a = 1/s):

    gamma_min_i = g_d + log v_i + (l_i - l_max) / s
    delta_gamma = g_n - g_d + (l_max - l_min) / s          (one slope for every component)
    gamma_i(t)  = gamma_min_i + t * delta_gamma
    clip:         gamma_i(t) in [g_d + log v_i, g_n + max(log v_i, 0)]

The upper clip never holds a component short of real noise: where v_i < 1 (less data variance
than the prior, e.g. flat pixels under the white prior) the effective end g_n + log v_i would
leave sigma_i^2 far below 1, so it stops at raw gamma = g_n instead (docs/maths.md §2b).

softness = inf gives the equal-SNR process (1/s = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .orders import ORDERS, order_labels

__all__ = [
    "NoiseState",
    "Schedule",
    "LinearSchedule",
    "CosineSchedule",
    "VPSchedule",
    "SoftConditioningSchedule",
    "linear_schedule",
    "cosine_schedule",
    "vp_schedule",
    "soft_conditioning_schedule",
    "soft_conditioning_state",
    "order_labels",
    "schedule_from_spec",
    "ORDERS",
    "SCHEDULES",
    "stiffness",
    "GAMMA_DENOISE",
    "GAMMA_NOISE",
    "clip_bounds",
]

GAMMA_DENOISE = -7.0  # default effective -log SNR at the denoised end (t = 0)
GAMMA_NOISE = 3.0  # ... and at the noised end (t = 1)


@dataclass(frozen=True)
class NoiseState:
    """gamma and dgamma/dt; everything else is derived so nothing can disagree.

    Shapes broadcast against the whitened components z of shape (B, D): (D,), (B, D),
    (B, 1) or (1,). gamma = -inf marks a known (hard-conditioned) component.
    """

    gamma: Tensor
    dgamma_dt: Tensor

    @property
    def alpha_sq(self) -> Tensor:
        return torch.sigmoid(-self.gamma)

    @property
    def sigma_sq(self) -> Tensor:
        return torch.sigmoid(self.gamma)

    @property
    def alpha(self) -> Tensor:
        return self.alpha_sq.sqrt()

    @property
    def sigma(self) -> Tensor:
        return self.sigma_sq.sqrt()

    @property
    def beta(self) -> Tensor:
        # dgamma_dt is exactly 0 on frozen components, so beta is too (also for gamma = -inf)
        return torch.where(
            self.dgamma_dt == 0, torch.zeros_like(self.dgamma_dt), self.sigma_sq * self.dgamma_dt
        )

    @property
    def snr(self) -> Tensor:
        """alpha^2 / sigma^2 of the whitened process (multiply by v_i for the true SNR)."""
        return torch.exp(-self.gamma)

    @property
    def frozen(self) -> Tensor:
        """Components that do not move at this time (clipped or known)."""
        return self.dgamma_dt == 0


# Largest slope dgamma/dt a soft-conditioning schedule may have: far beyond any usable step
# count (stiffness ~ slope steps), and small enough that gamma(t) and beta stay finite in float32.
MAX_SLOPE = 1e7


def _as_time(t: Tensor | float, like: Tensor | None = None) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.tensor(float(t), dtype=like.dtype if like is not None else torch.float32)
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype if t.is_floating_point() else like.dtype)
    return t


def _check_finite(name: str, value: float, low: float = -math.inf, high: float = math.inf):
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or math.isnan(value)
        or not low <= value <= high
    ):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")


class Schedule:
    """gamma(t), dgamma_dt(t); `dim` is None for a scalar schedule, else D."""

    dim: int | None = None
    name: str = ""

    def gamma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def dgamma_dt(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, t: Tensor | float) -> NoiseState:
        t = _as_time(t)
        return NoiseState(self.gamma(t), self.dgamma_dt(t))

    def spec(self) -> dict:
        """Plain JSON-able description that `schedule_from_spec` rebuilds."""
        raise NotImplementedError


class LinearSchedule(Schedule):
    """gamma(t) = gamma_min + t (gamma_max - gamma_min)."""

    name = "linear"

    def __init__(self, gamma_min: float = -10.0, gamma_max: float = 10.0):
        _check_finite("gamma_min", gamma_min, -50, 50)
        _check_finite("gamma_max", gamma_max, -50, 50)
        if gamma_max <= gamma_min:
            raise ValueError(f"gamma_max must exceed gamma_min ({gamma_min}), got {gamma_max}")
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)

    def gamma(self, t):
        t = _as_time(t)
        return self.gamma_min + t * (self.gamma_max - self.gamma_min)

    def dgamma_dt(self, t):
        t = _as_time(t)
        return torch.full_like(t, self.gamma_max - self.gamma_min)

    def spec(self):
        return {"family": "linear", "gamma_min": self.gamma_min, "gamma_max": self.gamma_max}


class CosineSchedule(Schedule):
    """Truncated cosine: gamma(t) = 2 log tan(theta(t)), theta linear between the angles
    whose gamma is gamma_min and gamma_max (alpha^2 = cos^2 theta)."""

    name = "cosine"

    def __init__(self, gamma_min: float = -10.0, gamma_max: float = 10.0):
        _check_finite("gamma_min", gamma_min, -50, 50)
        _check_finite("gamma_max", gamma_max, -50, 50)
        if gamma_max <= gamma_min:
            raise ValueError(f"gamma_max must exceed gamma_min ({gamma_min}), got {gamma_max}")
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)
        self._a = math.atan(math.exp(gamma_min / 2))
        self._b = math.atan(math.exp(gamma_max / 2))

    def _theta(self, t):
        # float64: near pi/2 a float32 angle loses gamma (gamma_max = 50 came out as 32.8)
        return self._a + t.to(torch.float64) * (self._b - self._a)

    def gamma(self, t):
        t = _as_time(t)
        return (2 * torch.log(torch.tan(self._theta(t)))).to(t.dtype)

    def dgamma_dt(self, t):
        # d/dtheta 2 log tan = 2 / (sin cos) = 4 / sin(2 theta)
        t = _as_time(t)
        return (4 * (self._b - self._a) / torch.sin(2 * self._theta(t))).to(t.dtype)

    def spec(self):
        return {"family": "cosine", "gamma_min": self.gamma_min, "gamma_max": self.gamma_max}


class VPSchedule(Schedule):
    """Variance-preserving (DDPM continuous) schedule, alpha^2 = exp(-B(t)),
    B(t) = b0 + beta_min t + (beta_max - beta_min) t^2 / 2, gamma = log expm1(B);
    b0 puts gamma(0) at gamma_min."""

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, gamma_min: float = -10.0):
        _check_finite("beta_min", beta_min, 0, 1e3)
        _check_finite("beta_max", beta_max, 0, 1e3)
        _check_finite("gamma_min", gamma_min, -50, 50)
        if beta_max <= beta_min:
            raise ValueError(f"beta_max must exceed beta_min ({beta_min}), got {beta_max}")
        self.beta_min, self.beta_max, self.gamma_min = float(beta_min), float(beta_max), gamma_min
        self._b0 = math.log1p(math.exp(gamma_min))

    def _big_b(self, t):
        t = _as_time(t)
        return self._b0 + self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def gamma(self, t):
        b = self._big_b(t)
        # log(expm1(b)) = b + log(-expm1(-b)), stable for large b
        return b + torch.log(-torch.expm1(-b))

    def dgamma_dt(self, t):
        t = _as_time(t)
        return (self.beta_min + (self.beta_max - self.beta_min) * t) / -torch.expm1(-self._big_b(t))

    def spec(self):
        return {
            "family": "vp",
            "beta_min": self.beta_min,
            "beta_max": self.beta_max,
            "gamma_min": self.gamma_min,
        }


class SoftConditioningSchedule(Schedule):
    """Per-component linear gamma with a shared slope (module docstring)."""

    name = "soft"

    def __init__(
        self,
        labels: Tensor,
        softness: float,
        gamma_denoise: float = GAMMA_DENOISE,
        gamma_noise: float = GAMMA_NOISE,
        variances: Tensor | None = None,
        clip: bool = False,
    ):
        labels = torch.as_tensor(labels, dtype=torch.float64).flatten()
        if labels.numel() == 0 or not torch.isfinite(labels).all():
            raise ValueError("labels must be a non-empty tensor of finite numbers")
        if not isinstance(softness, (int, float)) or isinstance(softness, bool) or not softness > 0:
            raise ValueError(f"softness must be in (0, inf], got {softness!r}")
        _check_finite("gamma_denoise", gamma_denoise, -30, 30)
        _check_finite("gamma_noise", gamma_noise, -30, 30)
        if gamma_noise <= gamma_denoise:
            raise ValueError(
                f"gamma_noise must exceed gamma_denoise ({gamma_denoise}), got {gamma_noise}"
            )
        if variances is None:
            log_v = torch.zeros_like(labels)
        else:
            v = torch.as_tensor(variances, dtype=torch.float64).flatten()
            if v.shape != labels.shape or not (torch.isfinite(v).all() and (v > 0).all()):
                raise ValueError(f"variances must be {labels.numel()} positive finite numbers")
            log_v = v.log()
        inv_s = 0.0 if math.isinf(softness) else 1.0 / float(softness)
        self.labels, self.softness, self.clip = labels, float(softness), bool(clip)
        self.gamma_denoise, self.gamma_noise = float(gamma_denoise), float(gamma_noise)
        self.variances = None if variances is None else log_v.exp()
        self.log_v, self.inv_softness = log_v, inv_s
        self.dim = labels.numel()
        l_min, l_max = labels.min(), labels.max()
        self.gamma_start = gamma_denoise + log_v + (labels - l_max) * inv_s  # (D,) float64
        self.delta_gamma = float(gamma_noise - gamma_denoise + (l_max - l_min) * inv_s)
        if not self.delta_gamma <= MAX_SLOPE:  # also catches inf and nan
            span = float(l_max - l_min)
            raise ValueError(
                f"softness {softness!r} is too small for labels spanning {span:.3g}: the "
                f"slope dgamma/dt would be {self.delta_gamma:.3g} (at most {MAX_SLOPE:.0e}, "
                f"beyond which float32 noise states overflow); use softness >= "
                f"{span / (MAX_SLOPE - (gamma_noise - gamma_denoise)):.3g}"
            )
        self.lower, self.upper = clip_bounds(log_v, gamma_denoise, gamma_noise)

    def _state(self, t):
        t = _as_time(t)
        return soft_conditioning_state(
            self.labels,
            self.log_v,
            self.inv_softness,
            t,
            self.gamma_denoise,
            self.gamma_noise,
            self.clip,
        )

    def gamma(self, t):
        return self._state(t).gamma

    def dgamma_dt(self, t):
        return self._state(t).dgamma_dt

    def __call__(self, t):
        return self._state(t)

    def window(self) -> tuple[Tensor, Tensor]:
        """(t_start, t_end) per component: where its clipped gamma moves (D,) each."""
        t0 = (self.lower - self.gamma_start) / self.delta_gamma
        t1 = (self.upper - self.gamma_start) / self.delta_gamma
        return t0.clamp(0, 1), t1.clamp(0, 1)

    def spec(self):
        return {
            "family": "soft",
            "labels": self.labels.tolist(),
            "softness": self.softness,
            "gamma_denoise": self.gamma_denoise,
            "gamma_noise": self.gamma_noise,
            "variances": None if self.variances is None else self.variances.tolist(),
            "clip": self.clip,
        }


def clip_bounds(log_v: Tensor, gamma_denoise: float, gamma_noise: float) -> tuple[Tensor, Tensor]:
    """(lower, upper) raw-gamma bounds of the clipped soft-conditioning schedule (D,): the
    effective -log SNR gamma_denoise at the clean end; at the noised end gamma_noise + log v,
    but never below raw gamma_noise (sigma^2 = sigmoid(gamma_noise) ~ 1), module docstring."""
    return gamma_denoise + log_v, gamma_noise + log_v.clamp_min(0.0)


def soft_conditioning_state(
    labels: Tensor,
    log_v: Tensor,
    inv_softness: Tensor | float,
    t: Tensor,
    gamma_denoise: float = GAMMA_DENOISE,
    gamma_noise: float = GAMMA_NOISE,
    clip: bool = False,
) -> NoiseState:
    """The soft-conditioning NoiseState for t of shape () or (B,), with one softness per
    example allowed (inv_softness = 1/s, scalar or (B,); 0 for s = inf). Returns gamma of
    shape t.shape + (D,). Used by the schedule and by training over a softness family."""
    labels = labels.to(device=t.device, dtype=torch.float64)
    log_v = log_v.to(device=t.device, dtype=torch.float64)
    inv_s = torch.as_tensor(inv_softness, dtype=torch.float64, device=t.device).unsqueeze(-1)
    l_min, l_max = labels.min(), labels.max()
    start = gamma_denoise + log_v + (labels - l_max) * inv_s
    slope = gamma_noise - gamma_denoise + (l_max - l_min) * inv_s
    gamma = start + t.to(torch.float64).unsqueeze(-1) * slope
    dgamma = slope.expand_as(gamma)
    if clip:
        lower, upper = clip_bounds(log_v, gamma_denoise, gamma_noise)
        active = (gamma > lower) & (gamma < upper)
        gamma = torch.minimum(torch.maximum(gamma, lower), upper)
        dgamma = torch.where(active, dgamma, torch.zeros_like(dgamma))
    return NoiseState(gamma.to(t.dtype), dgamma.to(t.dtype).contiguous())


def linear_schedule(gamma_min: float = -10.0, gamma_max: float = 10.0) -> LinearSchedule:
    return LinearSchedule(gamma_min, gamma_max)


def cosine_schedule(gamma_min: float = -10.0, gamma_max: float = 10.0) -> CosineSchedule:
    return CosineSchedule(gamma_min, gamma_max)


def vp_schedule(
    beta_min: float = 0.1, beta_max: float = 20.0, gamma_min: float = -10.0
) -> VPSchedule:
    return VPSchedule(beta_min, beta_max, gamma_min)


def soft_conditioning_schedule(
    labels,
    softness: float,
    gamma_denoise: float = GAMMA_DENOISE,
    gamma_noise: float = GAMMA_NOISE,
    variances=None,
    clip: bool = False,
) -> SoftConditioningSchedule:
    """docs/maths.md §2. `variances` = v_i, data variance of each whitened component (None: 1)."""
    return SoftConditioningSchedule(labels, softness, gamma_denoise, gamma_noise, variances, clip)


SCHEDULES = {
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "vp": VPSchedule,
    "soft": SoftConditioningSchedule,
}


def schedule_from_spec(spec: dict) -> Schedule:
    """Inverse of `Schedule.spec()`; ValueError on anything malformed."""
    if not isinstance(spec, dict) or spec.get("family") not in SCHEDULES:
        raise ValueError(f"schedule spec needs 'family' in {sorted(SCHEDULES)}")
    kwargs = {k: v for k, v in spec.items() if k != "family"}
    try:
        return SCHEDULES[spec["family"]](**kwargs)
    except TypeError as err:
        raise ValueError(f"schedule spec has wrong fields: {err}") from err


# ---------------------------------------------------------------- stiffness


def stiffness(
    schedule: Schedule, variances: Tensor | None = None, grid: int = 2001, per_window: int = 4
) -> dict:
    """How many uniform steps a schedule needs (docs/maths.md §2).

    Returns max beta, max dgamma/dt, the narrowest active window, and `steps_needed`:
    the smallest step count with h * max beta <= 1, h * max dgamma/dt <= 2 and at least
    `per_window` steps inside the narrowest component window.
    """
    t = torch.linspace(0, 1, grid, dtype=torch.float64)
    state = schedule(t)
    max_beta = float(state.beta.max())
    max_dg = float(state.dgamma_dt.abs().max())
    min_window = 1.0
    if isinstance(schedule, SoftConditioningSchedule) and schedule.clip:
        t0, t1 = schedule.window()
        min_window = float((t1 - t0).clamp_min(1e-9).min())
    steps = max(max_beta, max_dg / 2, per_window / min_window)
    return {
        "max_beta": max_beta,
        "max_dgamma_dt": max_dg,
        "min_window": min_window,
        "steps_needed": int(math.ceil(steps)),
    }
