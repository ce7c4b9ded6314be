"""Trained denoiser: a U-Net conditioned on the whole per-component noise state (docs/maths.md §4).

The wrapper owns all the maths; the U-Net (models.py) only maps images to images.

Input. The whitened state z (B, D) is shown to the network as an image, basis.decode(z): the basis
is orthonormal, so white noise stays white and no unwhitening is needed. The conditioning is the
whole noise state, not t: gamma (B, D), clamped to [-30, 30] and divided by 10, goes through an
MLP (Linear D -> cond_dim, SiLU, Linear) to the FiLM embedding. The network therefore serves every
schedule of the family it was trained on (any softness, any t) with one set of weights.

Output (v-prediction per component). The network's image is read back as v_hat = basis.encode(out)
and

    x0_hat = alpha * z - sigma * v_hat          (alpha^2 + sigma^2 = 1, per component)

since v = alpha eps - sigma u and z = alpha u + sigma eps give u = alpha z - sigma v. Why v:
- well conditioned at both ends with no division anywhere: as sigma -> 0, x0_hat -> z, so a
  known (gamma = -inf, sigma = 0) or fully denoised component comes back as z exactly, and as
  alpha -> 0 the network's output is the estimate itself (x0_hat = -v_hat);
- its error is the x0 error reweighted by a bounded factor: v_hat - v = (x0 - x0_hat) / sigma,
  so the v-MSE is the x0-MSE weighted by 1 / sigma^2 = 1 + alpha^2 / sigma^2 = 1 + SNR per
  component (SNR of the whitened process), the usual "SNR + 1" weighting.

Checkpoints (saving, loading, rebuilding the trained process) are in checkpoints.py.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..schedules import NoiseState
from .models import UNet, UNetConfig

__all__ = [
    "GammaConditionedNet",
    "NetworkDenoiser",
    "network_v",
    "clean_gamma",
    "shown_gamma",
    "GAMMA_CLAMP",
    "GAMMA_SCALE",
]

GAMMA_CLAMP = 30.0  # gamma beyond +-30 carries no information in float32 (e^-30 ~ 1e-13)
GAMMA_SCALE = 10.0  # features gamma / 10 lie in [-3, 3]


def clean_gamma(process) -> Tensor:
    """gamma (D,) float32 at t = 0: how known components (gamma = -inf) are shown to a network,
    the value it saw for clean components in training, not the clamp -30 it never saw."""
    return (
        process.noise_state(0.0, like=torch.zeros(1, dtype=torch.float64)).gamma.reshape(-1).float()
    )


def shown_gamma(gamma: Tensor, clean: Tensor) -> Tensor:
    """gamma with its known (-inf) entries replaced by `clean` (clean_gamma)."""
    return torch.where(torch.isneginf(gamma), clean.to(gamma), gamma)


def network_v(
    basis,
    net: nn.Module,
    z: Tensor,
    gamma: Tensor,
    model: nn.Module | None = None,
    autocast_dtype: torch.dtype | None = None,
    gamma_image: bool = False,
) -> Tensor:
    """One pass of a gamma-conditioned network in whitened components: z (B, D) is decoded to
    an image (plus the decoded gamma features as extra channels when `gamma_image`), the
    network's image is encoded back: (B, D) in z's dtype. `model` replaces `net` for the call
    (training passes its DDP wrapper); `autocast_dtype` runs the network, not the basis, under
    autocast."""
    model = net if model is None else model
    param = next(net.parameters())
    zin = z.to(device=param.device, dtype=param.dtype)
    features = NetworkDenoiser.gamma_features(gamma.to(zin), z.shape[0], z.shape[1])
    image = basis.decode(zin)
    if gamma_image:
        image = torch.cat([image, basis.decode(features)], dim=1)
    ctx = (
        torch.autocast(device_type=param.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    if autocast_dtype is not None and image.is_cuda:
        image = image.contiguous(memory_format=torch.channels_last)
    with ctx:
        out = model(image, features)
    return basis.encode(out.to(param.dtype)).to(device=z.device, dtype=z.dtype)


class GammaConditionedNet(nn.Module):
    """The trainable part: (image (B, C, H, W), gamma features (B, D)) -> image (B, C, H, W)."""

    def __init__(self, config: UNetConfig, dim: int):
        super().__init__()
        self.config, self.dim = config, int(dim)
        self.embed = nn.Sequential(
            nn.Linear(self.dim, config.cond_dim),
            nn.SiLU(),
            nn.Linear(config.cond_dim, config.cond_dim),
        )
        self.unet = UNet(config)

    def forward(self, image: Tensor, features: Tensor) -> Tensor:
        return self.unet(image, self.embed(features))


def inference_autocast(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for sampling on `device`: bf16 on a CUDA device that supports it,
    else None (never on the CPU, where bf16 convolutions are slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return None


class FastInference:
    """Sampling settings shared by the network denoisers: `autocast_dtype` (None: full
    precision) is what forward runs the network under; `fast_inference()` sets it for the
    model's device and, on CUDA, stores the weights channels_last (the app, `load_model` and
    bench/bench_network.py all sample this way). The basis and the diffusion maths stay in the
    process's dtype; only the U-Net's convolutions run in bf16."""

    autocast_dtype: torch.dtype | None = None

    def fast_inference(self):
        device = next(self.model.parameters()).device
        self.autocast_dtype = inference_autocast(device)
        if self.autocast_dtype is not None:
            self.model.to(memory_format=torch.channels_last)
        return self


class NetworkDenoiser(FastInference, nn.Module):
    """Trained denoiser meeting the protocol (z (B, D), t, state=None) -> x0_hat (B, D).

    process: gives the basis, and the NoiseState when none is passed. config: the U-Net's
    (default UNetConfig with the basis's channel count); model: an existing GammaConditionedNet
    to wrap instead (e.g. EMA weights). The network is moved to the process's device.
    """

    def __init__(
        self, process, config: UNetConfig | None = None, model: GammaConditionedNet | None = None
    ):
        super().__init__()
        channels = process.shape[0]
        if model is None:
            if config is None:
                config = UNetConfig(in_channels=channels, out_channels=channels)
            model = GammaConditionedNet(config, process.dim)
        if (
            model.dim != process.dim
            or model.config.in_channels != channels
            or model.config.out_channels != channels
        ):
            raise ValueError(
                f"the network is built for D = {model.dim} with "
                f"{model.config.in_channels} channels; the process has "
                f"D = {process.dim} with {channels}"
            )
        self.process = process
        self.model = model.to(process.device)
        self.nfe = 0
        # Known components (gamma = -inf, hard conditioning) are shown to the network as clean
        # ones: at the schedule's gamma(0), the value it saw for clean components in training,
        # not at the clamp -30 (feature -3), which it never saw.
        self.register_buffer("clean_gamma", clean_gamma(process), persistent=False)

    @property
    def config(self) -> UNetConfig:
        return self.model.config

    @staticmethod
    def gamma_features(gamma: Tensor, batch: int, dim: int) -> Tensor:
        """gamma broadcast to (batch, dim), clamped to [-30, 30] and scaled by 1/10."""
        try:
            gamma = torch.broadcast_to(gamma, (batch, dim))
        except RuntimeError as err:
            raise ValueError(
                f"gamma of shape {tuple(gamma.shape)} does not broadcast to ({batch}, {dim})"
            ) from err
        return gamma.clamp(-GAMMA_CLAMP, GAMMA_CLAMP) / GAMMA_SCALE

    def predict_v(
        self,
        z: Tensor,
        gamma: Tensor,
        model: nn.Module | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> Tensor:
        """v_hat (B, D) in z's dtype. `model` replaces self.model (training passes its DDP
        wrapper); `autocast_dtype` runs the network (not the basis) under CUDA autocast."""
        if z.ndim != 2 or z.shape[1] != self.process.dim:
            raise ValueError(f"z must have shape (B, {self.process.dim}), got {tuple(z.shape)}")
        gamma = shown_gamma(gamma.to(z), self.clean_gamma)  # known components shown clean
        return network_v(self.process.basis, self.model, z, gamma, model, autocast_dtype)

    def forward(self, z: Tensor, t: Tensor | float, state: NoiseState | None = None) -> Tensor:
        if state is None:
            state = self.process.noise_state(t, like=z)
        self.nfe += 1
        gamma = state.gamma.to(z)
        v_hat = self.predict_v(z, gamma, autocast_dtype=self.autocast_dtype)
        # alpha = 1, sigma = 0 on known components: x0_hat = z exactly
        return torch.sigmoid(-gamma).sqrt() * z - torch.sigmoid(gamma).sqrt() * v_hat


# ---------------------------------------------------------------- checkpoints
