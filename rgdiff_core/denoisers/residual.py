"""A network that starts from the Gaussian: x0_hat = x0_hat of the exact Gaussian + a learned
residual that starts at zero (docs/maths.md §4), so an untrained network *is* the Gaussian
denoiser and training can only add structure beyond second order.

Gaussian part (whitened components). u ~ N(mu, Sigma) with Sigma replaced by its top-`rank`
eigenpairs plus the diagonal remainder,

    Sigma ~ L L^T + diag(d),   L = V diag(lam)^(1/2) (D, r),   d = diag(Sigma) - diag(L L^T) >= 0,

so diag(Sigma) is kept exactly (the remainder of a PSD matrix has a non-negative diagonal; the
clamp only removes rounding). E[u | z] for that Sigma is `analytic.low_rank_posterior_mean`
(Woodbury with a QR, O(D r^2 + B D r) per noise state; known components, gamma = -inf, come
back as z bit for bit). rank >= D, or a diagonal Sigma (r = 0), is exact; at rank ~ D the dense
GaussianDenoiser is the faster way to the same answer.

Residual (v-prediction form, as network.py): the U-Net's image is read back as
v_res = basis.encode(out) and

    x0_hat = x0_hat_gauss - sigma * v_res,      v_hat = v_gauss + v_res,

with v_gauss = (alpha z - x0_hat_gauss) / sigma. Why v and not a direct x0 residual: the v-MSE of
the trainer (`v_loss`, the x0-MSE weighted by 1 + SNR) applies unchanged through `predict_v`; the
correction vanishes with sigma, so known and fully denoised components stay z with no mask; and
at alpha -> 0 the residual is the x0 correction itself. The UNet's output conv starts at zero
(models.py), so a fresh network's residual is exactly 0.

Network input: the image basis.decode(z) and, when the U-Net reads 2C channels (the default),
the gamma features (clamped gamma / 10, known components at the schedule's gamma(0) as in
network.py) decoded through the basis as C more channels; the U-Net's 3x3 input conv mixes them
(a separate 1x1 conv would add nothing). The features also drive FiLM through the MLP as before.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..schedules import NoiseState
from .analytic import SIGMA_SQ_FLOOR, low_rank_posterior_mean
from .models import UNetConfig
from .network import FastInference, GammaConditionedNet, clean_gamma, network_v, shown_gamma

__all__ = ["GaussianResidualDenoiser", "low_rank_gaussian"]


def low_rank_gaussian(process, gaussian, rank: int) -> tuple[Tensor, Tensor, Tensor]:
    """(mu (D,), L (D, r), d (D,)) float64 on the CPU with Sigma ~ L L^T + diag(d): the top
    min(rank, D) eigenpairs and the diagonal remainder (r = 0 when Sigma is diagonal).
    gaussian: anything `accuracy.gaussian_of(process, ...)` takes."""
    from ..accuracy import gaussian_of  # accuracy imports the denoisers package

    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    try:
        g = gaussian_of(process, gaussian)
    except ValueError as err:
        raise ValueError(f"gaussian: {err}") from err
    if g.diagonal:
        return g.mean, torch.zeros(g.mean.numel(), 0, dtype=torch.float64), g.cov.clamp_min(0)
    r = min(rank, g.mean.numel())
    lam, vec = torch.linalg.eigh(g.cov)  # ascending
    factor = vec[:, -r:] * lam[-r:].clamp_min(0).sqrt()
    d = (g.cov.diagonal() - (factor * factor).sum(1)).clamp_min(0)
    return g.mean, factor.contiguous(), d


class GaussianResidualDenoiser(FastInference, nn.Module):
    """Denoiser (z (B, D), t, state=None) -> x0_hat (B, D): exact low-rank Gaussian + residual.

    process: gives the basis and the NoiseState when none is passed. gaussian: images
    (N, C, H, W), a GaussianDenoiser of this process, (mean, cov) whitened, or a Gaussian.
    config: the U-Net's (default UNetConfig(in_channels=2C, out_channels=C): the gamma image
    on); in_channels C turns the gamma image off. model: an existing GammaConditionedNet to wrap
    (e.g. EMA weights), used as it is. rank: eigenpairs kept (>= 1; capped at D).
    low_rank: (mu, L, d) as low_rank_gaussian returns them (a checkpoint's, or another
    denoiser's `low_rank()`), used instead of `gaussian` and `rank`.
    """

    def __init__(
        self,
        process,
        gaussian=None,
        config: UNetConfig | None = None,
        model: GammaConditionedNet | None = None,
        rank: int = 64,
        low_rank: tuple[Tensor, Tensor, Tensor] | None = None,
    ):
        super().__init__()
        if low_rank is None:
            if gaussian is None:
                raise ValueError("pass the Gaussian (gaussian=...) or its low_rank parts")
            mu, factor, d = low_rank_gaussian(process, gaussian, rank)
        else:
            mu, factor, d = (torch.as_tensor(x, dtype=torch.float64).cpu() for x in low_rank)
            dim = process.dim
            if (
                mu.shape != (dim,)
                or factor.ndim != 2
                or factor.shape[0] != dim
                or d.shape != (dim,)
            ):
                raise ValueError(
                    f"low_rank must be (mu (D,), L (D, r), d (D,)) with D = {dim}, got shapes "
                    f"{tuple(mu.shape)}, {tuple(factor.shape)}, {tuple(d.shape)}"
                )
        channels, dim = process.shape[0], process.dim
        if config is not None and not isinstance(config, UNetConfig):
            raise ValueError(f"config must be a UNetConfig, got {type(config).__name__}")
        if model is None:
            config = config or UNetConfig(in_channels=2 * channels, out_channels=channels)
            model = GammaConditionedNet(config, dim)
        elif not isinstance(model, GammaConditionedNet):
            raise ValueError(f"model must be a GammaConditionedNet, got {type(model).__name__}")
        cfg = model.config
        if model.dim != dim or cfg.in_channels not in (channels, 2 * channels):
            raise ValueError(
                f"model: built for D = {model.dim} reading {cfg.in_channels} channels; the "
                f"process has D = {dim} and needs {channels} or {2 * channels} (with gamma)"
            )
        if cfg.out_channels != channels:
            raise ValueError(f"model: writes {cfg.out_channels} channels, not {channels}")
        self.process, self.rank = process, factor.shape[1]
        self.gamma_image = cfg.in_channels == 2 * channels
        self.model = model.to(process.device)
        dev = process.device
        self.register_buffer("mu", mu.to(dev))
        self.register_buffer("factor", factor.to(dev))
        self.register_buffer("remainder", d.to(dev))
        scale = float((d + (factor * factor).sum(1)).mean())
        self.sigma_sq_floor = SIGMA_SQ_FLOOR * max(scale, 1e-300)
        self.register_buffer("clean_gamma", clean_gamma(process), persistent=False)
        self.nfe = 0

    @property
    def config(self) -> UNetConfig:
        return self.model.config

    def low_rank(self) -> tuple[Tensor, Tensor, Tensor]:
        """(mu, L, d) of the Gaussian part, float64 on the CPU (what checkpoints store)."""
        return self.mu.cpu(), self.factor.cpu(), self.remainder.cpu()

    def with_model(self, model: GammaConditionedNet) -> GaussianResidualDenoiser:
        """The same Gaussian part with another network (e.g. the EMA weights)."""
        return GaussianResidualDenoiser(self.process, model=model, low_rank=self.low_rank())

    # ------------------------------------------------------------ the Gaussian part

    def _rows(self, gamma: Tensor, batch: int) -> Tensor:
        """gamma as (G, D) float64 with G = 1 or batch."""
        dim = self.mu.shape[0]
        gamma = gamma.to(device=self.mu.device, dtype=torch.float64)
        rows = gamma.reshape(1, -1) if gamma.ndim < 2 else gamma
        if rows.ndim != 2 or rows.shape[0] not in (1, batch) or rows.shape[1] not in (1, dim):
            raise ValueError(
                f"gamma of shape {tuple(gamma.shape)} does not broadcast to ({batch}, {dim})"
            )
        return rows.expand(rows.shape[0], dim)

    def gaussian_x0(self, z: Tensor, gamma: Tensor) -> Tensor:
        """The Gaussian part: E[u | z] (B, D) in z's dtype for the low-rank Sigma."""
        self._check_z(z)
        rows = self._rows(gamma, z.shape[0])
        return low_rank_posterior_mean(
            z, rows, self.mu, self.factor, self.remainder, self.sigma_sq_floor
        )

    # ------------------------------------------------------------ the residual

    def _check_z(self, z: Tensor) -> None:
        if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != self.process.dim:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (B, {self.process.dim}), got {shape}")

    def residual_v(
        self,
        z: Tensor,
        gamma: Tensor,
        model: nn.Module | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """v_res (B, D) in z's dtype: the network's correction (0 for a fresh network). gamma
        is what the network is shown (known components already replaced by clean_gamma)."""
        self._check_z(z)
        basis = self.process.basis
        return network_v(basis, self.model, z, gamma, model, autocast_dtype, self.gamma_image)

    def predict_v(
        self,
        z: Tensor,
        gamma: Tensor,
        model: nn.Module | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """v_hat = v_gauss + v_res (B, D), the quantity `training.v_loss` compares with the
        velocity alpha eps - sigma u; same signature as NetworkDenoiser.predict_v. For noisy
        components only (sigma > 0; 0 where gamma = -inf)."""
        x0_gauss = self.gaussian_x0(z, gamma)
        g = gamma.to(z)
        sigma = torch.sigmoid(g).sqrt()
        v_gauss = (torch.sigmoid(-g).sqrt() * z - x0_gauss) / sigma.clamp_min(1e-30)
        v_res = self.residual_v(
            z, shown_gamma(gamma.to(z), self.clean_gamma), model, autocast_dtype
        )
        return torch.where(sigma > 0, v_gauss + v_res, torch.zeros_like(v_res))

    def forward(self, z: Tensor, t: Tensor | float, state: NoiseState | None = None) -> Tensor:
        self._check_z(z)
        if state is None:
            state = self.process.noise_state(t, like=z)
        self.nfe += 1
        gamma = state.gamma.to(z)
        x0_gauss = self.gaussian_x0(z, gamma)
        shown = shown_gamma(gamma.to(z), self.clean_gamma)
        v_res = self.residual_v(z, shown, autocast_dtype=self.autocast_dtype)
        # sigma = 0 on known components, so they stay z (gaussian_x0 already put z there)
        return x0_gauss - torch.sigmoid(gamma).sqrt() * v_res
