"""Frozen, hashable descriptions of what the controls chose; the cache keys of ui/cache.py.

Plain fields only, so equal choices hash equal across reruns and sessions. Nothing here builds
a library object: ui/cache.py does that, once per distinct spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Dataset choice of the shared sidebar. `upload` is a digest of the uploaded files
    (empty unless dataset == "upload"); `device` is the resolved device ("cpu" or "cuda")."""

    dataset: str = "digits"
    size: int = 32
    device: str = "cpu"
    seed: int = 0
    upload: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)


@dataclass(frozen=True)
class BasisSpec:
    name: str = "wavelet"
    wavelet: str = "haar"
    levels: int | None = None  # None: the maximum, log2(size)

    def options(self) -> dict:
        """Keyword options for rgdiff_core.bases.make_basis (PCA data is added by the cache)."""
        if self.name == "wavelet":
            return {"wavelet": self.wavelet, "levels": self.levels}
        return {}

    def label(self) -> str:
        if self.name == "wavelet":
            lv = "max" if self.levels is None else self.levels
            return f"wavelet ({self.wavelet}, levels {lv})"
        return self.name


@dataclass(frozen=True)
class PriorSpec:
    kind: str = "white"
    exponent: float = 2.0

    def options(self) -> dict:
        return {"exponent": self.exponent} if self.kind == "power_law" else {}

    def label(self) -> str:
        return f"power law (exponent {self.exponent:g})" if self.kind == "power_law" else self.kind


@dataclass(frozen=True)
class ScheduleSpec:
    """family in linear / cosine (scalar: gamma_min, gamma_max), vp (gamma_min, beta_min,
    beta_max) or soft (order, softness, gamma_denoise, gamma_noise, clip). `labels` is the
    digest of the uploaded labels of the custom order (ui/cache.register_labels); empty for
    every other order."""

    family: str = "soft"
    gamma_min: float = -10.0
    gamma_max: float = 10.0
    beta_min: float = 0.1
    beta_max: float = 20.0
    order: str = "variance"
    softness: float = 1.0
    gamma_denoise: float = -7.0
    gamma_noise: float = 3.0
    clip: bool = False
    labels: str = ""

    @property
    def scalar(self) -> bool:
        return self.family != "soft"

    def label(self) -> str:
        if self.family == "soft":
            s = "∞" if math.isinf(self.softness) else f"{self.softness:g}"
            clip = ", clip" if self.clip else ""
            return f"soft-conditioning ({self.order}, s = {s}{clip})"
        if self.family == "vp":
            return f"VP (β {self.beta_min:g} → {self.beta_max:g})"
        return f"{self.family} γ"


@dataclass(frozen=True)
class ProcessSpec:
    data: DataSpec
    basis: BasisSpec
    prior: PriorSpec
    schedule: ScheduleSpec

    def label(self) -> str:
        return f"{self.basis.label()} · {self.prior.label()} prior · {self.schedule.label()}"
