"""Priors: the Gaussian N(mu, U^T S^2 U) the data relaxes to, as a mean m and std s per basis
component (docs/maths.md §1). Whitened components u = (c - m) / s; the basis is a separate object.

Kinds: white (s = 1; m = data mean in components if data is given, else 0), data (m, s from the
data, s floored), power_law (s ∝ (1 + scale_i)^(-exponent/2), scaled so the mean variance matches
the data's when data is given), explicit (given mean and std).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Prior", "make_prior", "PRIORS", "component_stats"]


class Prior(nn.Module):
    """Mean and std per component (D,), held as buffers."""

    def __init__(self, mean: Tensor, std: Tensor, kind: str = "explicit", options=None):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean.shape != std.shape:
            raise ValueError(
                f"mean and std must have the same length, got {mean.numel()} and {std.numel()}"
            )
        if not (torch.isfinite(std).all() and (std > 0).all() and torch.isfinite(mean).all()):
            raise ValueError("std must be positive and finite, mean finite")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.kind = kind
        self.options = dict(options or {})

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def whiten(self, c: Tensor) -> Tensor:
        return (c - self.mean.to(c)) / self.std.to(c)

    def unwhiten(self, u: Tensor) -> Tensor:
        return u * self.std.to(u) + self.mean.to(u)

    def spec(self) -> dict:
        return {"kind": self.kind, **self.options}


def component_stats(basis, data: Tensor, batch: int = 1024) -> tuple[Tensor, Tensor]:
    """Mean and variance (D,) of the basis coefficients of a data set (N, C, H, W)."""
    if data.ndim != 4 or tuple(data.shape[1:]) != tuple(basis.shape):
        raise ValueError(
            f"data must have shape (N, {', '.join(map(str, basis.shape))}), got {tuple(data.shape)}"
        )
    total = torch.zeros(basis.dim, dtype=torch.float64)
    total_sq = torch.zeros(basis.dim, dtype=torch.float64)
    for start in range(0, data.shape[0], batch):
        c = basis.encode(data[start : start + batch]).double().cpu()
        total += c.sum(0)
        total_sq += (c * c).sum(0)
    n = data.shape[0]
    mean = total / n
    var = (total_sq / n - mean * mean).clamp_min(0)
    return mean, var


# Each kind gets the data's component moments (mean, var) (D,) float64, or None without data.


def _white(basis, moments=None):
    mean = moments[0] if moments is not None else torch.zeros(basis.dim)
    return Prior(mean, torch.ones(basis.dim), "white")


def _data(basis, moments=None, floor: float = 1e-4):
    if moments is None:
        raise ValueError("prior 'data' needs data")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    mean, var = moments
    # the floor is relative to the mean variance so it is scale-free
    var = var.clamp_min(floor * float(var.mean().clamp_min(1e-12)))
    return Prior(mean, var.sqrt(), "data", {"floor": floor})


def _power_law(basis, moments=None, exponent: float = 2.0):
    if not (
        isinstance(exponent, (int, float))
        and not isinstance(exponent, bool)
        and 0 <= exponent <= 10
    ):
        raise ValueError(f"exponent must be in [0, 10], got {exponent!r}")
    var = (1 + basis.scale().double().cpu()) ** (-float(exponent))
    mean = torch.zeros(basis.dim, dtype=torch.float64)
    if moments is not None:
        mean, data_var = moments
        var = var * (data_var.mean() / var.mean())
    return Prior(mean, var.sqrt(), "power_law", {"exponent": float(exponent)})


def _explicit(basis, moments=None, mean=None, std=None):
    if std is None:
        raise ValueError("prior 'explicit' needs std (and optionally mean)")
    std = torch.as_tensor(std).flatten()
    mean = torch.zeros_like(std) if mean is None else torch.as_tensor(mean).flatten()
    if std.numel() != basis.dim:
        raise ValueError(f"std must have {basis.dim} entries, got {std.numel()}")
    return Prior(mean, std, "explicit")


PRIORS = {"white": _white, "data": _data, "power_law": _power_law, "explicit": _explicit}


def make_prior(kind: str, basis, data: Tensor | None = None, **options) -> Prior:
    """Build a prior of `kind` in {white, data, power_law, explicit} for `basis`."""
    if kind not in PRIORS:
        raise ValueError(f"kind must be one of {sorted(PRIORS)}, got {kind!r}")
    if data is not None and not (isinstance(data, Tensor) and torch.isfinite(data).all()):
        raise ValueError("data must be a tensor of finite numbers (N, C, H, W)")
    moments = None if data is None or kind == "explicit" else component_stats(basis, data)
    return PRIORS[kind](basis, moments, **options)
