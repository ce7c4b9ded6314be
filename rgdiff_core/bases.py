"""Real orthonormal bases acting on image batches (docs/maths.md §1, §3).

An image batch x (B, C, H, W) has coefficients c = U x (B, D), D = C*H*W, with U real and
orthonormal: decode(encode(x)) = x, ||c|| = ||x||, and white noise stays white, so every later
formula is the same in every basis. Components are channel-major, index = channel*(H*W) + j:
each basis applies one (H*W)-dimensional transform to every channel, except PCA, which acts on
the whole flattened D-vector. Within a channel components run coarse -> fine.

- pixel:   U = I. scale 0; groups are pixel rows.
- pca:     rows of U are eigenvectors of the mean-subtracted data covariance
           Cov = sum_n (x_n - mean)(x_n - mean)^T / (N - 1), by decreasing eigenvalue lambda_r
           (floored at floor * lambda_0). scale = rank r; groups are rank bins 0, 1, 2-3, 4-7, ...
- fourier: F = rfft2(x, norm="ortho") is unitary on the full spectrum, with F(-k) = conj F(k).
           A self-conjugate mode (2k = 0 mod (H, W)) gives the one component Re F(k); every
           other pair {k, -k} gives sqrt(2) Re F(k) and sqrt(2) Im F(k), adjacent, because
           |F(k)|^2 + |F(-k)|^2 = 2 |F(k)|^2. scale = |k| in cycles per image.
- dct:     DCT-II per axis, M[k, j] = sqrt(2/n) s_k cos(pi (2j + 1) k / (2n)), s_0 = 1/sqrt(2);
           c = M_H x M_W^T. scale = |k| / 2, the cycles-per-image scale of Fourier |k|.
- wavelet: periodized orthogonal DWT, equal to pywt.wavedec2(mode="periodization"). One level on
           an n x n block X is A X A^T with A = [Lo; Hi] the n x n periodic analysis matrix; it
           repeats on the low-low block. Order: approximation, then (H, V, D) details from coarse
           to fine (pywt's list order). scale = level: approximation 0, details 1 (coarsest)..L.

Fourier and DCT components sort by increasing |k| within a channel, ties by (ky, kx).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

MAX_PCA_DIM = 4096


def _describe(t: Any) -> str:
    return f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__


def _dims(shape: Sequence[int]) -> str:
    return ", ".join(map(str, shape))


def _is_batch(t: Any, trailing: tuple[int, ...]) -> bool:
    """Whether t is a float tensor of shape (N, *trailing)."""
    return isinstance(t, Tensor) and t.is_floating_point() and tuple(t.shape[1:]) == trailing


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_shape(shape: Any) -> tuple[int, int, int]:
    ok = isinstance(shape, (tuple, list)) and len(shape) == 3 and all(map(_is_int, shape))
    if ok:
        c, h, w = (int(s) for s in shape)
        ok = 1 <= c <= 4 and 2 <= h <= 256 and 2 <= w <= 256
    if not ok:
        raise ValueError(
            f"shape must be 3 ints (C, H, W) with 1 <= C <= 4 and 2 <= H, W <= 256, got {shape!r}"
        )
    return c, h, w


def _radial_groups(radius: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Group ids and names for bins of round(|k|) (half up, the same rule for Fourier and DCT)."""
    bins, group_id = np.unique(np.floor(radius + 0.5).astype(np.int64), return_inverse=True)
    return group_id, [f"|k|={b}" for b in bins]


class Basis(torch.nn.Module):
    """Real orthonormal basis on (B, C, H, W) batches; subclasses give _encode and _decode.

    Metadata (scale, group ids, positions) are non-persistent buffers, so they follow `.to()`;
    the transform's own tensors are ordinary buffers, cast to the input's device and dtype on
    the fly (cached per device and dtype).
    """

    name: ClassVar[str] = ""
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape: tuple[int, int, int] = _check_shape(shape)
        self.dim: int = math.prod(self.shape)
        self._cast_cache: dict[tuple, tuple[Tensor, int, Tensor]] = {}
        self._group_names: list[str] = []
        # Tells basis_images which device and dtype the module was moved to.
        self.register_buffer("_probe", torch.zeros(0), persistent=False)

    # -- subclass interface
    def _encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode(self, c: Tensor) -> Tensor:
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        return {}

    def _set_layout(self, scale, group_id, names, positions=None, freq=None, tile=True) -> None:
        """Register per-component metadata, given per channel (repeated over C) unless not tile."""
        reps = self.shape[0] if tile else 1
        for key, val, dtype in [
            ("_scale", scale, torch.float32),
            ("_group_id", group_id, torch.long),
            ("_positions", positions, torch.float32),
            ("_freq", freq, torch.long),
        ]:
            if val is not None:
                val = torch.as_tensor(np.asarray(val), dtype=dtype)
                val = val.repeat(reps) if val.ndim == 1 else val.repeat(reps, 1)
            self.register_buffer(key, val, persistent=False)
        self._group_names = list(names)

    def _register(self, **arrays: Any) -> None:
        for key, val in arrays.items():  # the transform's own tensors: saved in state_dict
            self.register_buffer(key, torch.as_tensor(val))

    def _cast(self, name: str, like: Tensor, keep_dtype: bool = False) -> Tensor:
        """Buffer `name` on like's device (and in like's dtype unless keep_dtype)."""
        buf = getattr(self, name)
        dtype = buf.dtype if keep_dtype else like.dtype
        if buf.device == like.device and buf.dtype == dtype:
            return buf
        key = (name, like.device, dtype)
        hit = self._cast_cache.get(key)
        # identity and version checks catch .to() replacing a buffer and load_state_dict's copy_;
        # a copy made under inference_mode cannot be saved for backward, so redo it outside
        stale = hit is None or hit[0] is not buf or hit[1] != buf._version
        if stale or (hit[2].is_inference() and not torch.is_inference_mode_enabled()):
            with torch.inference_mode(False):
                hit = (buf, buf._version, buf.to(device=like.device, dtype=dtype))
            self._cast_cache[key] = hit
        return hit[2]

    def _take(self, t: Tensor, name: str) -> Tensor:
        """t (N, K) -> t[:, index buffer `name`]; a 2D index_select along dim 1 is several
        times faster on the CPU than one along the last dim of a 3D tensor."""
        return t.index_select(1, self._cast(name, t, keep_dtype=True))

    def _apply(self, fn, recurse=True):
        self._cast_cache.clear()  # the cached copies belong to the old buffers
        return super()._apply(fn, recurse)

    # -- public API
    def encode(self, x: Tensor) -> Tensor:
        """Coefficients (B, D) of images x (B, C, H, W), on x's device and in x's dtype."""
        if not _is_batch(x, self.shape):
            raise ValueError(
                f"x must be a float tensor (B, {_dims(self.shape)}), got {_describe(x)}"
            )
        return self._encode(x)

    def decode(self, c: Tensor) -> Tensor:
        """Images (B, C, H, W) from coefficients c (B, D)."""
        if not _is_batch(c, (self.dim,)):
            raise ValueError(f"c must be a float tensor (B, {self.dim}), got {_describe(c)}")
        return self._decode(c)

    def scale(self) -> Tensor:
        """Natural scale per component (D,) float32, coarse = small."""
        return self._scale

    def groups(self) -> list[tuple[str, Tensor]]:
        """Named index sets (LongTensors) partitioning range(D), ordered coarse -> fine."""
        return [
            (name, torch.nonzero(self._group_id == g).flatten())
            for g, name in enumerate(self._group_names)
        ]

    def positions(self) -> Tensor | None:
        """(D, 2) float (row, col) centre of each component in pixels; None if not localised."""
        return self._positions

    def basis_images(self, indices: int | Sequence[int] | Tensor) -> Tensor:
        """(K, C, H, W) images of the unit coefficient vectors at `indices` (rows of U)."""
        idx = torch.as_tensor(indices).reshape(-1)
        bad_type = idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool
        if idx.numel() and (bad_type or int(idx.min()) < 0 or int(idx.max()) >= self.dim):
            raise ValueError(f"indices must be ints in 0..{self.dim - 1}, got {indices!r}")
        idx = idx.long().to(self._probe.device)
        unit = torch.zeros(len(idx), self.dim, dtype=self._probe.dtype, device=self._probe.device)
        unit[torch.arange(len(idx), device=idx.device), idx] = 1
        return self.decode(unit)

    def spec(self) -> dict[str, Any]:
        """Plain JSON-able description: name, shape and the options that rebuild the basis."""
        return {"name": self.name, "shape": list(self.shape), **self._options()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.spec().items() if k != "name")


class PixelBasis(Basis):
    """The identity: component j of a channel is pixel (j // W, j % W)."""

    name = "pixel"

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape)
        _, h, w = self.shape
        rows, cols = np.divmod(np.arange(h * w), w)
        self._set_layout(
            np.zeros(h * w), rows, [f"row {r}" for r in range(h)], np.stack([rows, cols], 1)
        )

    def _encode(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), self.dim).clone()  # no aliasing with the caller's images

    def _decode(self, c: Tensor) -> Tensor:
        return c.reshape(len(c), *self.shape).clone()


class PCABasis(Basis):
    """Principal components of `data` (N, C, H, W); dense D x D, so D <= 4096."""

    name = "pca"
    option_names = ("data", "floor")

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


class FourierBasis(Basis):
    """Real Fourier basis: cos/sin pairs per conjugate pair plus the self-conjugate modes."""

    name = "fourier"

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


class DCTBasis(Basis):
    """Orthonormal 2D DCT-II, two small matrix products per channel."""

    name = "dct"

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


class WaveletBasis(Basis):
    """Periodized orthogonal 2D DWT with `levels` levels (default: the maximum, log2(side))."""

    name = "wavelet"
    option_names = ("wavelet", "levels")

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


BASES: dict[str, type[Basis]] = {
    cls.name: cls for cls in (PixelBasis, PCABasis, FourierBasis, DCTBasis, WaveletBasis)
}


def make_basis(name: str, shape: Sequence[int], **options: Any) -> Basis:
    """Build the registered basis `name` for images of shape (C, H, W); see BASES."""
    cls = BASES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"name must be one of {sorted(BASES)}, got {name!r}")
    unknown = sorted(set(options) - set(cls.option_names))
    if unknown:
        raise ValueError(
            f"options {unknown} are not valid for basis {name!r}; valid options: "
            f"{list(cls.option_names) or 'none'}"
        )
    return cls(shape, **options)
