"""Settings -> objects: the one place a choice of basis, prior, schedule and denoiser becomes a
library object (docs/maths.md §1-2).

Specs are frozen dataclasses of plain fields (hashable: they are the app's cache keys, and
`to_dict` / `from_dict` make them JSON and checkpoint entries). The builders turn them into
objects the same way for the app, training, checkpoint loading, the benches and scripts:

    spec = ProcessSpec(DataSpec("digits", 32), BasisSpec("dct"), PriorSpec("data"),
                       ScheduleSpec(order="variance", softness=0.3, clip=True))
    process = build_process(spec, load_dataset("digits", 32))

Statistics (component variances, the fitted prior and the PCA basis) come from the first
N_STATS items of the data, so a process depends on its data only through those items.
Variances are floored once, at VARIANCE_FLOOR times their mean: lambda_i (basis coefficients)
for the variance order, and v_i = lambda_i / s_i^2 (whitened components) for the schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor

from .bases import BASES, Basis, make_basis
from .priors import Prior, component_stats, make_prior
from .process import Process
from .schedules import (
    GAMMA_DENOISE,
    Schedule,
    cosine_schedule,
    linear_schedule,
    order_labels,
    soft_conditioning_schedule,
    vp_schedule,
)
from .terminal import auto_gamma_noise

__all__ = [
    "N_STATS",
    "VARIANCE_FLOOR",
    "DataSpec",
    "BasisSpec",
    "PriorSpec",
    "ScheduleSpec",
    "ProcessSpec",
    "ComponentStats",
    "fitting_data",
    "build_basis",
    "build_prior",
    "component_statistics",
    "build_schedule",
    "build_process",
]

N_STATS = 1000  # data items that statistics, priors and the PCA basis are fitted on
VARIANCE_FLOOR = 1e-6  # variances are floored at this fraction of their mean


class _Spec:
    """to_dict / from_dict for the frozen specs below (nested specs included)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]):
        if not isinstance(doc, dict):
            raise ValueError(f"{cls.__name__} needs a dict, got {type(doc).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no fields {unknown}; valid: {sorted(names)}")
        return cls(**doc)


@dataclass(frozen=True)
class DataSpec(_Spec):
    """A dataset at an image size. `upload` is a digest of user images (dataset "upload");
    `device` is where runs go ("cpu" or "cuda") and `seed` the runs' seed."""

    dataset: str = "digits"
    size: int = 32
    device: str = "cpu"
    seed: int = 0
    upload: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)


@dataclass(frozen=True)
class BasisSpec(_Spec):
    """A basis by registry name; of the fields below, only the options its class names
    (`option_names`) are passed on."""

    name: str = "wavelet"
    wavelet: str = "haar"
    levels: int | None = None  # None: the maximum, log2(size)

    def options(self) -> dict[str, Any]:
        """Keyword options for make_basis (fitting data is added by build_basis)."""
        if self.name not in BASES:
            raise ValueError(f"basis name must be one of {sorted(BASES)}, got {self.name!r}")
        mine = {f.name for f in fields(self)} - {"name"}
        return {k: getattr(self, k) for k in BASES[self.name].option_names if k in mine}

    def label(self) -> str:
        if self.name == "wavelet":
            lv = "max" if self.levels is None else self.levels
            return f"wavelet ({self.wavelet}, levels {lv})"
        return self.name


@dataclass(frozen=True)
class PriorSpec(_Spec):
    kind: str = "white"
    exponent: float = 2.0  # power_law only

    def options(self) -> dict[str, Any]:
        return {"exponent": self.exponent} if self.kind == "power_law" else {}

    def label(self) -> str:
        return f"power law (exponent {self.exponent:g})" if self.kind == "power_law" else self.kind


@dataclass(frozen=True)
class ScheduleSpec(_Spec):
    """family linear / cosine (gamma_min, gamma_max), vp (gamma_min, beta_min, beta_max) or
    soft (order, softness, gamma_denoise, gamma_noise, clip). gamma_noise None is "auto": the
    smallest target whose prior term L_T is at most terminal.AUTO_TARGET (half the bound
    terminal.L_T_TARGET) for the data (docs/maths.md §2b). A trained network's process
    (process_from_checkpoint) reads None as the target it was trained with. `labels` names the
    custom order's labels (the app's digest of them); the labels themselves go to
    build_schedule."""

    family: str = "soft"
    gamma_min: float = -10.0
    gamma_max: float = 10.0
    beta_min: float = 0.1
    beta_max: float = 20.0
    order: str = "variance"
    softness: float = 1.0
    gamma_denoise: float = GAMMA_DENOISE
    gamma_noise: float | None = None  # None: auto
    clip: bool = False
    labels: str = ""

    @property
    def scalar(self) -> bool:
        return self.family != "soft"

    def label(self) -> str:
        if self.family == "soft":
            s = "∞" if math.isinf(self.softness) else f"{self.softness:g}"
            clip = ", clip" if self.clip else ""
            if self.gamma_noise is not None:
                clip += f", γ̃_n {self.gamma_noise:g}"
            return f"soft-conditioning ({self.order}, s = {s}{clip})"
        if self.family == "vp":
            return f"VP (β {self.beta_min:g} → {self.beta_max:g})"
        return f"{self.family} γ"


@dataclass(frozen=True)
class ProcessSpec(_Spec):
    data: DataSpec = DataSpec()
    basis: BasisSpec = BasisSpec()
    prior: PriorSpec = PriorSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ProcessSpec:
        parts = {"data": DataSpec, "basis": BasisSpec, "prior": PriorSpec, "schedule": ScheduleSpec}
        if not isinstance(doc, dict) or set(doc) - set(parts):
            raise ValueError(f"ProcessSpec needs a dict with keys among {sorted(parts)}")
        return cls(**{k: parts[k].from_dict(v) for k, v in doc.items()})

    def label(self) -> str:
        return f"{self.basis.label()} · {self.prior.label()} prior · {self.schedule.label()}"


@dataclass(frozen=True)
class ComponentStats:
    """Second moments of the data in a basis and prior, (D,) float64 on the CPU.

    mean, var: mean and (unfloored) variance of each basis coefficient; lam: var floored;
    v: lam / s^2 floored, the data variance of each whitened component; u_sq: E[u^2] of each
    whitened component (mean included) over all the data, what the prior term L_T needs."""

    mean: Tensor
    var: Tensor
    lam: Tensor
    v: Tensor
    u_sq: Tensor


def _floor(x: Tensor) -> Tensor:
    return x.clamp_min(VARIANCE_FLOOR * max(float(x.mean()), 1e-12))


def fitting_data(data: Tensor | None) -> Tensor | None:
    """The items statistics are fitted on: the first N_STATS."""
    return None if data is None else data[:N_STATS]


def build_basis(spec: BasisSpec, shape: tuple[int, int, int], data: Tensor | None = None) -> Basis:
    """The basis of `spec` for images of `shape` (C, H, W); a basis that `needs_data` (PCA)
    is fitted on fitting_data(data)."""
    opts = spec.options()
    if BASES[spec.name].needs_data:
        if data is None:
            raise ValueError(f"basis {spec.name!r} is fitted on data: pass data")
        opts["data"] = fitting_data(data)
    return make_basis(spec.name, shape, **opts)


def build_prior(spec: PriorSpec, basis: Basis, data: Tensor | None = None) -> Prior:
    return make_prior(spec.kind, basis, fitting_data(data), **spec.options())


def component_statistics(basis: Basis, data: Tensor, prior: Prior | None = None) -> ComponentStats:
    """Mean, variance, floored lambda and v of the components of fitting_data(data); v uses
    the prior's std (1 without a prior). u_sq, what the prior term needs, is over all of
    `data`: a basis fitted on few items (PCA with N_STATS < D) has components whose variance
    only the rest of the data shows."""
    mean, var = _moments(basis, fitting_data(data))
    lam = _floor(var)
    all_mean, all_var = (mean, var) if len(data) <= N_STATS else _moments(basis, data)
    if prior is None:
        return ComponentStats(mean, var, lam, lam, all_var + all_mean**2)
    m, s = prior.mean.double().cpu(), prior.std.double().cpu()
    u_sq = (all_var + (all_mean - m) ** 2) / s**2
    return ComponentStats(mean, var, lam, _floor(lam / s**2), u_sq)


def _moments(basis: Basis, data: Tensor) -> tuple[Tensor, Tensor]:
    return component_stats(basis, data)


def build_schedule(
    spec: ScheduleSpec, basis: Basis, stats: ComponentStats | None, labels=None
) -> Schedule:
    """The schedule of `spec`. Soft conditioning takes its labels from `spec.order` (custom:
    `labels`, D numbers) and its per-component variances from `stats.v`."""
    if spec.family == "linear":
        return linear_schedule(spec.gamma_min, spec.gamma_max)
    if spec.family == "cosine":
        return cosine_schedule(spec.gamma_min, spec.gamma_max)
    if spec.family == "vp":
        return vp_schedule(spec.beta_min, spec.beta_max, gamma_min=spec.gamma_min)
    if spec.family != "soft":
        raise ValueError(
            f"schedule family must be one of linear, cosine, vp, soft; got {spec.family!r}"
        )
    if stats is None:
        raise ValueError("a soft-conditioning schedule needs the data's component statistics")
    if spec.order == "custom" and labels is None:
        raise ValueError("order 'custom' needs its labels: load a labels file")
    custom = None if labels is None else torch.as_tensor(labels, dtype=torch.float64)
    order = order_labels(spec.order, basis, variances=stats.lam, labels=custom)
    gamma_noise = spec.gamma_noise
    if gamma_noise is None:  # auto: the smallest target with L_T <= terminal.L_T_TARGET
        gamma_noise = auto_gamma_noise(
            order, spec.softness, spec.gamma_denoise, stats.v, spec.clip, stats.u_sq
        )
    return soft_conditioning_schedule(
        order, spec.softness, spec.gamma_denoise, gamma_noise, variances=stats.v, clip=spec.clip
    )


def build_process(spec: ProcessSpec, data: Tensor, labels=None, device=None) -> Process:
    """Basis, prior and schedule of `spec` fitted on `data` (N, C, H, W) (the training split
    of spec.data), on `device` (default spec.data.device)."""
    basis = build_basis(spec.basis, spec.data.shape, data)
    prior = build_prior(spec.prior, basis, data)
    stats = None if spec.schedule.scalar else component_statistics(basis, data, prior)
    schedule = build_schedule(spec.schedule, basis, stats, labels)
    return Process(basis, prior, schedule).to(device or spec.data.device)
