"""Denoiser choice -> denoiser: the registry the app, benches and scripts build denoisers from.

    den = build_denoiser(DenoiserSpec("gaussian_fit"), process, data)

kinds:
- empirical: the exact optimal denoiser of the training set (reproduces its items), or of its
  first `items` items (items > 0; its cost per step grows linearly with them);
- gaussian_fit: the exact denoiser of the Gaussian with the data's mean and covariance, fitted
  on the first GAUSSIAN_FIT_ITEMS items;
- gaussian_true: the exact denoiser of the Gaussian-fields dataset's true covariance
  (data.FIELD_EXPONENT, data.FIELD_MASS), for that dataset only;
- network: a trained checkpoint (`checkpoint` = its path) serving `process`. Its own process
  (load_model / process_from_checkpoint) is the one it was trained for.

Every exact denoiser takes the noise state from the sampler, so one built denoiser serves every
schedule of its (data, basis, prior).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from ..specs import N_STATS, _Spec
from .analytic import EmpiricalDenoiser, GaussianDenoiser

__all__ = ["DenoiserSpec", "DENOISERS", "build_denoiser", "GAUSSIAN_FIT_ITEMS"]

GAUSSIAN_FIT_ITEMS = 4 * N_STATS  # items the fitted Gaussian's covariance is estimated from


@dataclass(frozen=True)
class DenoiserSpec(_Spec):
    kind: str = "empirical"
    checkpoint: str = ""  # network: the checkpoint's path
    dataset: str = ""  # gaussian_true: the dataset the data come from (must be "fields")
    items: int = 0  # empirical: use the first `items` training items (0: all of them)


def _data(data: Tensor | None, kind: str) -> Tensor:
    if data is None:
        raise ValueError(f"denoiser {kind!r} is built from data: pass the training data")
    return data


def _empirical(spec: DenoiserSpec, process, data: Tensor | None):
    items = spec.items
    if isinstance(items, bool) or not isinstance(items, int) or items < 0:
        raise ValueError(f"items must be an integer >= 0 (0: every item), got {items!r}")
    data = _data(data, spec.kind)
    return EmpiricalDenoiser(process, (data[:items] if items else data).to(process.device))


def _gaussian_fit(spec: DenoiserSpec, process, data: Tensor | None):
    return GaussianDenoiser.fit(process, _data(data, spec.kind)[:GAUSSIAN_FIT_ITEMS])


def _gaussian_true(spec: DenoiserSpec, process, data: Tensor | None):
    import torch

    from ..data import FIELD_EXPONENT, FIELD_MASS, gaussian_field_covariance

    if spec.dataset != "fields":
        raise ValueError("the true covariance is known only for the Gaussian fields dataset")
    cov = gaussian_field_covariance(process.shape[1], FIELD_EXPONENT, FIELD_MASS)
    return GaussianDenoiser(process, torch.zeros(process.dim), cov)


def _network(spec: DenoiserSpec, process, data: Tensor | None):
    from .checkpoints import load_network_denoiser

    if not spec.checkpoint:
        raise ValueError("a network denoiser needs its checkpoint path")
    den, _ = load_network_denoiser(spec.checkpoint, process=process)
    return den


DENOISERS: dict[str, Callable] = {
    "empirical": _empirical,
    "gaussian_fit": _gaussian_fit,
    "gaussian_true": _gaussian_true,
    "network": _network,
}


def build_denoiser(spec: DenoiserSpec, process, data: Tensor | None = None):
    """The denoiser of `spec` serving `process` (on its device); ValueError for an impossible
    choice. data: the training split (N, C, H, W) for the data-built kinds."""
    if spec.kind not in DENOISERS:
        raise ValueError(f"denoiser kind must be one of {sorted(DENOISERS)}, got {spec.kind!r}")
    return DENOISERS[spec.kind](spec, process, data)
