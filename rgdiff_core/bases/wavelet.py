"""The periodized orthogonal wavelet basis (docs/maths.md §3).

Equal to pywt.wavedec2(mode="periodization") for any orthogonal PyWavelets family (haar, dbN,
symN, coifN) and any number of levels up to log2(side), on square power-of-two images. One level
on an n x n block X is A X A^T with A = [Lo; Hi] the n x n periodic analysis matrix; it repeats
on the low-low block. Order: approximation, then (H, V, D) details from coarse to fine (pywt's
list order). scale = level: approximation 0, details 1 (coarsest)..L; groups are the sub-bands.

Drawn as the pyramid mosaic of pywt's coeffs_to_array: [[approx, V], [H, D]] recursively,
coarse at the top left. pywt is imported only when a wavelet basis is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import Basis, CoefficientLayout, _is_int


def wavelet_mosaic(
    c: np.ndarray, side: int, levels: int
) -> tuple[np.ndarray, list[tuple[int, int, int, str]]]:
    """One channel's wavelet coefficients (side*side,) in WaveletBasis order -> (side, side)
    mosaic [[approx, V], [H, D]] (recursively), and the sub-band squares."""
    mos = np.zeros((side, side))
    m = side >> levels
    mos[:m, :m] = c[: m * m].reshape(m, m)
    bands = [(0, 0, m, "approx")]
    off = m * m
    for j in range(1, levels + 1):
        for name, (r0, c0) in zip("HVD", ((m, 0), (0, m), (m, m)), strict=True):
            mos[r0 : r0 + m, c0 : c0 + m] = c[off : off + m * m].reshape(m, m)
            bands.append((r0, c0, m, f"L{j} {name}"))
            off += m * m
        m *= 2
    return mos, bands


class WaveletBasis(Basis):
    """Periodized orthogonal 2D DWT with `levels` levels (default: the maximum, log2(side))."""

    name = "wavelet"
    needs_data = False
    option_names = ("wavelet", "levels")
    positional = False
    label = "wavelet"

    def __init__(
        self, shape: Sequence[int], wavelet: str = "haar", levels: int | None = None
    ) -> None:
        super().__init__(shape)
        import pywt  # optional dependency: only this basis needs it

        _, h, w = self.shape
        if h != w or h & (h - 1):
            raise ValueError(f"shape must be square with a power-of-two side, got {self.shape}")
        max_levels = h.bit_length() - 1
        levels = max_levels if levels is None else levels
        if not (_is_int(levels) and 1 <= levels <= max_levels):
            raise ValueError(f"levels must be an int in 1..{max_levels}, got {levels!r}")
        known = isinstance(wavelet, str) and wavelet in pywt.wavelist(kind="discrete")
        if not (known and pywt.Wavelet(wavelet).orthogonal):
            raise ValueError(
                f"wavelet must name an orthogonal PyWavelets wavelet (haar, dbN, "
                f"symN, coifN), got {wavelet!r}"
            )
        self.wavelet, self.levels = wavelet, int(levels)
        for s in range(self.levels):
            self.register_buffer(f"_analysis{s}", self._matrix(pywt, wavelet, h >> s))
        buffers, layout = self._plan(h, self.levels)
        self._register(**buffers)
        self._set_layout(*layout)

    @staticmethod
    def _matrix(pywt: Any, wavelet: str, n: int) -> Tensor:
        """n x n analysis matrix [Lo; Hi]: column j = pywt.dwt of the unit vector e_j."""
        lo, hi = pywt.dwt(np.eye(n), wavelet, mode="periodization", axis=0)
        a = np.concatenate([lo, hi], 0)
        err = np.abs(a @ a.T - np.eye(n)).max()
        if err > 1e-6:
            raise ValueError(
                f"wavelet {wavelet!r} is not orthogonal to float precision with "
                f"periodization at size {n} (error {err:.1e})"
            )
        # Nearest orthogonal matrix: removes the ~1e-12 rounding in some stored filters (symN),
        # so float64 round trips are exact, while staying within 1e-10 of pywt.
        u, _, vh = np.linalg.svd(a)
        return torch.from_numpy(u @ vh)

    @staticmethod
    def _plan(side: int, levels: int) -> tuple[dict[str, np.ndarray], tuple]:
        """Index buffers and per-channel (scale, group ids, names, positions), in pywt order.

        Level s outputs Y_s = A_s X_s A_s^T (n = side >> s, m = n / 2), whose quadrants hold
        the H (rows m:, cols :m), V (:m, m:) and D (m:, m:) details; LL of Y_{L-1} is the
        approximation. _gather: pywt index -> position in the concatenated flattened Y_s;
        _block{s}: position in Y_s -> pywt index of that coefficient (0 where unused).
        """
        offset = np.cumsum([0] + [(side >> s) ** 2 for s in range(levels)])
        steps = [(levels - 1, 0, [(0, 0)])]  # (s, level j, quadrants): approximation first
        steps += [(levels - j, j, [(1, 0), (0, 1), (1, 1)]) for j in range(1, levels + 1)]
        gather, blocks, scale, group, pos, names, start = [], {}, [], [], [], ["approx"], 0
        for s, j, quadrants in steps:
            n, m = side >> s, side >> (s + 1)
            r, q = np.divmod(np.arange(m * m), m)
            block = blocks.setdefault(f"_block{s}", np.zeros((n, n), np.int64))
            for dr, dq in quadrants:
                gather.append(offset[s] + (r + dr * m) * n + q + dq * m)
                block[r + dr * m, q + dq * m] = start + np.arange(m * m)
                scale.append(np.full(m * m, j))
                group.append(np.full(m * m, len(pos)))
                pos.append((np.stack([r, q], 1) + 0.5) * (side / m) - 0.5)  # cell centres
                start += m * m
            names += [f"L{j} {band}" for band in "HVD"] if j else []
        buffers = {"_gather": np.concatenate(gather), **{k: v.ravel() for k, v in blocks.items()}}
        layout = np.concatenate(scale), np.concatenate(group), names, np.concatenate(pos)
        return buffers, layout

    def _options(self) -> dict[str, Any]:
        return {"wavelet": self.wavelet, "levels": self.levels}

    # bmm with expanded (stride-0) matrices and strided LL views: no copies, two kernels a level.
    def _encode(self, x: Tensor) -> Tensor:
        b, c, side, _ = x.shape
        cur, outputs = x.reshape(b * c, side, side), []
        for s in range(self.levels):  # finest level first (Mallat's algorithm)
            a = self._cast(f"_analysis{s}", x).expand(b * c, -1, -1)
            y = torch.bmm(a, torch.bmm(cur, a.mT))
            outputs.append(y.reshape(b * c, -1))
            cur = y[:, : y.shape[1] // 2, : y.shape[1] // 2]
        flat = torch.cat(outputs, -1)
        return self._take(flat, "_gather").reshape(b, -1)

    def _decode(self, c: Tensor) -> Tensor:
        ch, side, _ = self.shape
        flat = c.reshape(-1, side * side)
        n = side >> self.levels
        cur = flat[:, : n * n].reshape(-1, n, n)
        for s in reversed(range(self.levels)):  # coarsest first
            block = self._take(flat, f"_block{s}").view(-1, 2 * n, 2 * n)
            block[:, :n, :n] = cur  # [[cur, V], [H, D]]
            a = self._cast(f"_analysis{s}", c).expand(len(flat), -1, -1)
            cur, n = torch.bmm(a.mT, torch.bmm(block, a)), 2 * n
        return cur.reshape(len(c), ch, side, side)

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        """Each channel's pyramid mosaic side by side; bands outline channel 0's sub-bands."""
        ch, side, _ = self.shape
        parts = [wavelet_mosaic(p, side, self.levels) for p in c.reshape(ch, side * side)]
        img = np.concatenate([m for m, _ in parts], axis=1)
        return CoefficientLayout(
            "image",
            img,
            f"{self.wavelet} wavelet pyramid, {self.levels} levels",
            np.arange(img.shape[1]),
            np.arange(side),
            bands=parts[0][1],
        )
