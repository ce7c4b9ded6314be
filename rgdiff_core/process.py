"""Process = basis + prior + schedule (docs/maths.md §1).

    x  (B, C, H, W)  --basis.encode-->  c (B, D)  --prior.whiten-->  u (B, D)
    forward marginal:  z_t = alpha(t) * u + sigma(t) * eps,  eps ~ N(0, I)
    terminal (t = 1):  z ~ N(0, I)   (in data space: x ~ N(mu, U^T S^2 U))

Hard conditioning (docs/maths.md §4): `known` = (mask (D,) bool, values (D,) or (B, D) whitened)
fixes components; in the NoiseState they get gamma = -inf and dgamma/dt = 0 (beta = 0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .schedules import NoiseState, Schedule

__all__ = ["Process", "apply_known"]


def apply_known(state: NoiseState, mask: Tensor | None) -> NoiseState:
    """Mark `mask` components as known: gamma = -inf, dgamma/dt = 0."""
    if mask is None:
        return state
    gamma = torch.where(mask, torch.full_like(state.gamma, -torch.inf), state.gamma)
    dgamma = torch.where(mask, torch.zeros_like(state.dgamma_dt), state.dgamma_dt)
    return NoiseState(gamma, dgamma)


def _check_time(t) -> None:
    """t must lie in [0, 1]. Checked for numbers and CPU tensors; a tensor on an accelerator is
    not read back (that would synchronise every sampler step)."""
    if isinstance(t, bool):
        raise ValueError(f"t must be a time in [0, 1], got {t!r}")
    if isinstance(t, (int, float)):
        ok = 0.0 <= t <= 1.0
    elif isinstance(t, Tensor) and t.device.type == "cpu" and t.numel() <= 1_000_000:
        ok = bool(((t >= 0) & (t <= 1)).all()) if t.numel() else True
    else:
        return
    if not ok:
        raise ValueError(f"t must be a time in [0, 1] (0 = data, 1 = noise), got {t!r}")


class Process(nn.Module):
    """The forward noising process in whitened components of a basis."""

    def __init__(self, basis, prior, schedule: Schedule):
        super().__init__()
        if prior.dim != basis.dim:
            raise ValueError(f"prior has {prior.dim} components but the basis has {basis.dim}")
        if schedule.dim is not None and schedule.dim != basis.dim:
            raise ValueError(
                f"schedule has {schedule.dim} components but the basis has {basis.dim}"
            )
        self.basis, self.prior, self.schedule = basis, prior, schedule

    @property
    def dim(self) -> int:
        return self.basis.dim

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.basis.shape)

    @property
    def device(self) -> torch.device:
        return self.prior.mean.device

    def encode(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> whitened components u (B, D)."""
        return self.prior.whiten(self.basis.encode(x))

    def decode(self, u: Tensor) -> Tensor:
        """Whitened components u (B, D) -> images (B, C, H, W)."""
        return self.basis.decode(self.prior.unwhiten(u))

    def noise_state(
        self, t: Tensor | float, known: Tensor | None = None, like: Tensor | None = None
    ) -> NoiseState:
        """NoiseState broadcastable against (B, D): gamma of shape (D,), (B, D) or (B, 1).

        t: () or (B,). `like` sets device and dtype (default: the process's, float32).
        """
        dtype = like.dtype if like is not None else torch.float32
        device = like.device if like is not None else self.device
        _check_time(t)
        t = torch.as_tensor(t, dtype=dtype, device=device)
        if t.ndim > 1:
            raise ValueError(f"t must be a scalar or shape (B,), got shape {tuple(t.shape)}")
        state = self.schedule(t)
        if self.schedule.dim is None:
            state = NoiseState(state.gamma.unsqueeze(-1), state.dgamma_dt.unsqueeze(-1))
            if known is not None:
                shape = state.gamma.shape[:-1] + (self.dim,)
                state = NoiseState(state.gamma.expand(shape), state.dgamma_dt.expand(shape))
        return apply_known(state, None if known is None else known.to(device))

    def add_noise(
        self, u: Tensor, t: Tensor | float, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Sample z_t ~ q(z_t | u): returns (z, eps)."""
        state = self.noise_state(t, like=u)
        eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
        return state.alpha * u + state.sigma * eps, eps

    def sample_terminal(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """n draws of the prior in whitened components, N(0, I), shape (n, D)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        return torch.randn((n, self.dim), generator=generator, device=self.device, dtype=dtype)
