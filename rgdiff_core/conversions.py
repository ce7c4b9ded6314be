"""One formula per function: converting a denoiser's x0_hat into eps, score, velocity and
reverse-time drifts (docs/maths.md §1). All in whitened components, broadcasting a NoiseState.

Division by sigma happens only where a caller needs eps or the score itself; drifts are
written so that a frozen component (sigma = 0 or dgamma/dt = 0) is never divided by:
beta * score = dgamma/dt * (alpha x0_hat - z).
"""

from __future__ import annotations

from torch import Tensor

from .schedules import NoiseState

__all__ = [
    "eps_from_x0",
    "score_from_x0",
    "x0_from_eps",
    "v_from_x0",
    "x0_from_v",
    "reverse_sde_drift",
    "ode_drift",
]


def eps_from_x0(z: Tensor, x0_hat: Tensor, state: NoiseState) -> Tensor:
    """eps = (z - alpha x0_hat) / sigma. Undefined on known components (sigma = 0)."""
    return (z - state.alpha * x0_hat) / state.sigma


def x0_from_eps(z: Tensor, eps: Tensor, state: NoiseState) -> Tensor:
    """x0_hat = (z - sigma eps) / alpha."""
    return (z - state.sigma * eps) / state.alpha


def score_from_x0(z: Tensor, x0_hat: Tensor, state: NoiseState) -> Tensor:
    """Tweedie: score = (alpha x0_hat - z) / sigma^2."""
    return (state.alpha * x0_hat - z) / state.sigma_sq


def v_from_x0(z: Tensor, x0_hat: Tensor, state: NoiseState) -> Tensor:
    """v = alpha eps - sigma x0_hat (undefined on known components, like eps)."""
    eps = eps_from_x0(z, x0_hat, state)
    return state.alpha * eps - state.sigma * x0_hat


def x0_from_v(z: Tensor, v: Tensor, state: NoiseState) -> Tensor:
    """x0 = alpha z - sigma v (alpha^2 + sigma^2 = 1)."""
    return state.alpha * z - state.sigma * v


def reverse_sde_drift(z: Tensor, x0_hat: Tensor, state: NoiseState) -> Tensor:
    """dz/dt of the reverse SDE without its noise: -beta (z/2 + score)."""
    return -(0.5 * state.beta * z + state.dgamma_dt * (state.alpha * x0_hat - z))


def ode_drift(z: Tensor, x0_hat: Tensor, state: NoiseState) -> Tensor:
    """Probability-flow ODE: dz/dt = -beta/2 (z + score)."""
    return -0.5 * (state.beta * z + state.dgamma_dt * (state.alpha * x0_hat - z))
