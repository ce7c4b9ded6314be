"""Denoisers: every one is a callable (z, t, state=None) -> x0_hat in whitened components."""

from .analytic import EmpiricalDenoiser, GaussianDenoiser, component_covariance
from .checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_model,
    load_network_denoiser,
    process_from_checkpoint,
    save_checkpoint,
)
from .models import UNet, UNetConfig
from .network import GammaConditionedNet, NetworkDenoiser

__all__ = [
    "EmpiricalDenoiser",
    "GaussianDenoiser",
    "component_covariance",
    "UNet",
    "UNetConfig",
    "CheckpointError",
    "GammaConditionedNet",
    "NetworkDenoiser",
    "load_checkpoint",
    "load_model",
    "load_network_denoiser",
    "process_from_checkpoint",
    "save_checkpoint",
]
