"""The orthonormal 2D DCT-II basis (docs/maths.md §3).

Per axis M[k, j] = sqrt(2/n) s_k cos(pi (2j + 1) k / (2n)), s_0 = 1/sqrt(2); c = M_H x M_W^T.
No wrap-around edges, closest to how images are coded. scale = |k| / 2, the cycles-per-image
scale of Fourier |k|. Components sort by increasing |k| within a channel, ties by (ky, kx);
groups are bins of round(scale). Drawn as |c| at (ky, kx) >= 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Basis, CoefficientLayout, _radial_groups


class DCTBasis(Basis):
    """Orthonormal 2D DCT-II, two small matrix products per channel."""

    name = "dct"
    needs_data = False
    option_names = ()
    positional = False
    label = "DCT"

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        ky, kx = np.divmod(np.arange(h * w), w)
        perm = np.lexsort((kx, ky, ky**2 + kx**2))
        self._register(
            _mat_h=self._matrix(h), _mat_w=self._matrix(w), _perm=perm, _inv_perm=np.argsort(perm)
        )
        freq = np.stack([ky[perm], kx[perm]], 1)
        radius = np.sqrt((freq**2).sum(1)) / 2
        self._set_layout(radius, *_radial_groups(radius), freq=freq)

    @staticmethod
    def _matrix(n: int) -> Tensor:
        k, j = np.arange(n)[:, None], np.arange(n)[None, :]
        m = math.sqrt(2.0 / n) * np.cos(np.pi * (2 * j + 1) * k / (2 * n))
        m[0] /= math.sqrt(2.0)
        return torch.from_numpy(m)

    def frequencies(self) -> Tensor:
        """(D, 2) int64 DCT indices (ky, kx) of each component."""
        return self._freq

    def _encode(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        mat_h = self._cast("_mat_h", x).expand(b * c, h, h)  # bmm takes stride-0 batches
        y = torch.bmm(mat_h, x.reshape(b * c, h, w) @ self._cast("_mat_w", x).T)
        return self._take(y.reshape(b * c, h * w), "_perm").reshape(b, -1)

    def _decode(self, c: Tensor) -> Tensor:
        b = len(c)
        ch, h, w = self.shape
        y = self._take(c.reshape(b * ch, h * w), "_inv_perm").view(b * ch, h, w)
        mat_h = self._cast("_mat_h", c).expand(b * ch, h, h)
        return torch.bmm(mat_h.mT, y @ self._cast("_mat_w", c)).view(b, ch, h, w)

    def frequency_map(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """|c| of one channel's coefficients c (H*W,) at its DCT indices (ky, kx).
        Returns (map (H, W), kx (W,), ky (H,))."""
        _, h, w = self.shape
        n = h * w
        freq = self.frequencies()[:n].cpu().numpy()
        out = np.zeros((h, w))
        np.add.at(out, (freq[:, 0], freq[:, 1]), c[:n] ** 2)
        return np.sqrt(out), np.arange(w), np.arange(h)

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        return self._frequency_layout(c, "|DCT coefficient|")
