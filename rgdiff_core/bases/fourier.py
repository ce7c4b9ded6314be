"""The real orthonormal Fourier basis (docs/maths.md §3).

F = rfft2(x, norm="ortho") is unitary on the full spectrum, with F(-k) = conj F(k). A
self-conjugate mode (2k = 0 mod (H, W)) gives the one component Re F(k); every other pair
{k, -k} gives sqrt(2) Re F(k) and sqrt(2) Im F(k), adjacent, because
|F(k)|^2 + |F(-k)|^2 = 2 |F(k)|^2. scale = |k| in cycles per image, with signed
k in (-n/2, n/2] per axis. Components sort by increasing |k| within a channel, ties by
(ky, kx); groups are bins of round(|k|).

Drawn as |F(k)| on the centred (ky, kx) grid, each cos/sin pair's energy shared equally by k
and -k, so the map equals |fft2(x, norm="ortho")| after fftshift and is symmetric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .base import Basis, CoefficientLayout, _radial_groups


class FourierBasis(Basis):
    """Real Fourier basis: cos/sin pairs per conjugate pair plus the self-conjugate modes."""

    name = "fourier"
    needs_data = False
    option_names = ()
    positional = False
    label = "Fourier"

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        wr = w // 2 + 1
        ky, kx = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(wr), indexing="ij"))
        edge = (kx == 0) | ((w % 2 == 0) & (kx == w // 2))  # columns holding both k and -k
        selfc = edge & ((ky == 0) | ((h % 2 == 0) & (ky == h // 2)))
        pair = ~edge | ((ky >= 1) & (ky <= (h - 1) // 2))  # representative of a pair {k, -k}
        sy, sx = np.where(ky <= (h - 1) // 2, ky, ky - h), np.where(kx <= (w - 1) // 2, kx, kx - w)
        mode = np.concatenate([np.flatnonzero(selfc), np.flatnonzero(pair), np.flatnonzero(pair)])
        part = np.repeat([0, 0, 1], [selfc.sum(), pair.sum(), pair.sum()])  # 0 = Re, 1 = Im
        order = np.lexsort((part, sx[mode], sy[mode], sy[mode] ** 2 + sx[mode] ** 2))
        mode, part = mode[order], part[order]
        weight = np.where(selfc[mode], 1.0, math.sqrt(2.0))
        gather = 2 * mode + part  # index into view_as_real(rfft2(x)) flattened per channel
        # Decode is a gather too: every slot of the half spectrum reads one component times a
        # coefficient. Edge columns hold both k and -k, so the conjugate (-ky, kx) of a pair
        # there is written as well (irfft2 does not symmetrise them); Im of a real mode reads 0.
        conj = np.flatnonzero(edge[mode] & pair[mode])
        conj_slot = 2 * (((h - ky[mode[conj]]) % h) * wr + kx[mode[conj]]) + part[conj]
        src, coef = np.zeros(2 * h * wr, np.int64), np.zeros(2 * h * wr)
        src[gather], coef[gather] = np.arange(h * w), 1 / weight
        src[conj_slot], coef[conj_slot] = conj, np.where(part[conj] == 0, 1, -1) / weight[conj]
        self._register(_gather=gather, _weight=weight, _src=src, _coef=coef)
        freq = np.stack([sy[mode], sx[mode]], 1)
        radius = np.sqrt((freq**2).sum(1))
        self._set_layout(radius, *_radial_groups(radius), freq=freq)

    def frequencies(self) -> Tensor:
        """(D, 2) int64 signed (ky, kx) of each component's representative mode."""
        return self._freq

    def _encode(self, x: Tensor) -> Tensor:
        spec = torch.view_as_real(torch.fft.rfft2(x, norm="ortho"))
        out = self._take(spec.reshape(x.shape[0] * x.shape[1], -1), "_gather")
        return (out * self._cast("_weight", x)).reshape(len(x), self.dim)

    def _decode(self, c: Tensor) -> Tensor:
        b = len(c)
        ch, h, w = self.shape
        spec = self._take(c.reshape(b * ch, h * w), "_src") * self._cast("_coef", c)
        spec = torch.view_as_complex(spec.view(b, ch, h, w // 2 + 1, 2))
        return torch.fft.irfft2(spec, s=(h, w), norm="ortho")

    def frequency_map(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """|F(k)| of one channel's coefficients c (H*W,) on the centred (ky, kx) grid (pairs
        share their energy between k and -k). Returns (map (H, W), kx (W,), ky (H,))."""
        _, h, w = self.shape
        n = h * w
        freq = self.frequencies()[:n].cpu().numpy()
        energy = c[:n] ** 2
        ky, kx = freq[:, 0], freq[:, 1]
        selfc = ((2 * ky) % h == 0) & ((2 * kx) % w == 0)
        share = np.where(selfc, 1.0, 0.5)
        out = np.zeros((h, w))
        cy, cx = h // 2, w // 2  # index of k = 0 after centring (as np.fft.fftshift)
        np.add.at(out, ((ky + cy) % h, (kx + cx) % w), energy * share)
        np.add.at(out, ((-ky + cy) % h, (-kx + cx) % w), energy * np.where(selfc, 0.0, 0.5))
        coords_x = np.arange(w) - cx
        coords_y = np.arange(h) - cy
        return np.sqrt(out), coords_x, coords_y

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        return self._frequency_layout(c, "|F(k)|, k = 0 at the centre")
