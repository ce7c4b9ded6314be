"""The PCA basis, fitted on data (docs/maths.md §3).

Rows of U are eigenvectors of the mean-subtracted data covariance
Cov = sum_n (x_n - mean)(x_n - mean)^T / (N - 1), by decreasing eigenvalue lambda_r (floored at
floor * lambda_0). PCA acts on the whole flattened D-vector, channels mixed, so its components
are not channel-major. scale = rank r; groups are rank bins 0, 1, 2-3, 4-7, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import Basis, CoefficientLayout, _describe, _dims, _is_batch

MAX_PCA_DIM = 4096


class PCABasis(Basis):
    """Principal components of `data` (N, C, H, W); dense D x D, so D <= 4096."""

    name = "pca"
    needs_data = True
    option_names = ()  # data is fitted on, floor is a numerical setting: neither is a choice
    positional = False
    label = "PCA"

    def __init__(
        self, shape: Sequence[int], data: Tensor | None = None, floor: float = 1e-6
    ) -> None:
        super().__init__(shape)
        d = self.dim
        if d > MAX_PCA_DIM:
            raise ValueError(f"shape {self.shape} gives D = {d}; pca needs D <= {MAX_PCA_DIM}")
        if not (isinstance(floor, (int, float)) and not isinstance(floor, bool) and 0 < floor < 1):
            raise ValueError(f"floor must be a number in (0, 1), got {floor!r}")
        if not (_is_batch(data, self.shape) and len(data) >= 2):
            raise ValueError(
                f"data must be a float tensor of shape (N, {_dims(self.shape)}) "
                f"with N >= 2, got {_describe(data)}"
            )
        self.floor = float(floor)
        flat = data.detach().reshape(len(data), d)
        mean = flat.mean(0, dtype=torch.float64)
        cov = torch.zeros(d, d, dtype=torch.float64, device=flat.device)
        for chunk in flat.split(4096):  # bounded memory for large N
            centred = chunk.to(torch.float64) - mean
            cov += centred.T @ centred
        if not torch.isfinite(cov).all():
            raise ValueError("data must be finite")
        lam, vec = torch.linalg.eigh(cov / (len(flat) - 1))
        lam, vec = lam.flip(0).cpu(), vec.flip(1).cpu()
        # Eigenvector signs are arbitrary; make each one's largest entry positive (reproducible).
        sign = torch.sign(vec.gather(0, vec.abs().argmax(0, keepdim=True)))
        vec = vec * torch.where(sign == 0, 1.0, sign)
        top = float(lam[0]) if lam[0] > 0 else 1.0
        # float64 so float64 inputs round-trip to ~1e-15; float32 copies are cached on demand.
        self.register_buffer("components", vec.T.contiguous())  # (D, D), row r = eigenvector r
        self.register_buffer("eigenvalues", lam.clamp_min(self.floor * top))
        bins = np.array([r.bit_length() for r in range(d)])  # ranks 0 | 1 | 2-3 | 4-7 | ...
        spans = [((1 << b) >> 1, min((1 << b) - 1, d - 1)) for b in range(bins[-1] + 1)]
        names = [f"rank {lo}" if lo == hi else f"ranks {lo}-{hi}" for lo, hi in spans]
        self._set_layout(np.arange(d), bins, names, tile=False)

    def _options(self) -> dict[str, Any]:
        return {"floor": self.floor}  # the data itself is not part of the spec

    def _encode(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), self.dim) @ self._cast("components", x).T

    def _decode(self, c: Tensor) -> Tensor:
        return (c @ self._cast("components", c)).reshape(len(c), *self.shape)

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        """Bars over rank: components mix channels, so there is no image to draw them on."""
        return self._bars(c, max_bars, "PCA coefficients by rank", "rank (decreasing variance)")
