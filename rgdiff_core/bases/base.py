"""The Basis contract shared by every family, the registry, and helpers (docs/maths.md §1, §3).

An image batch x (B, C, H, W) has coefficients c = U x (B, D), D = C*H*W, with U real and
orthonormal: decode(encode(x)) = x, ||c|| = ||x||, and white noise stays white. Components are
channel-major, index = channel*(H*W) + j, and run coarse -> fine within a channel.

A subclass that sets `name` registers itself in BASES under that name when its class is
created, so a new family needs no edit outside its own module. It must also say what it is:

- needs_data:   bool, True if the basis is fitted on a data set passed as `data=` (PCA);
- option_names: tuple[str, ...], the keyword options a user chooses (the app's controls);
                fitted inputs and numerical settings such as PCA's `data` and `floor` are
                constructor keywords, which make_basis accepts, but not options;
- positional:   bool, True if component j of a channel is pixel (j // W, j % W);
- label:        str, a short human name ("pixel", "PCA", ...).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

# name -> class, filled by Basis.__init_subclass__; the only place a basis name becomes a class.
BASES: dict[str, type[Basis]] = {}

_DESCRIPTION = {"needs_data": bool, "option_names": tuple, "positional": bool, "label": str}


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


@dataclass
class CoefficientLayout:
    """How to draw a coefficient vector: an image (`values` (H, W)) or bars (`values` (K,)).

    x, y: axis coordinates (column and row centres for images, ranks for bars); bands: for
    wavelet mosaics, (row0, col0, size, name) of each sub-band square, for outlines and labels.
    """

    kind: str  # "image" or "bars"
    values: np.ndarray
    title: str
    x: np.ndarray
    y: np.ndarray | None = None
    x_title: str = ""
    y_title: str = ""
    bands: list[tuple[int, int, int, str]] = field(default_factory=list)


class Basis(torch.nn.Module):
    """Real orthonormal basis on (B, C, H, W) batches; subclasses give _encode and _decode.

    Metadata (scale, group ids, positions) are non-persistent buffers, so they follow `.to()`;
    the transform's own tensors are ordinary buffers, cast to the input's device and dtype on
    the fly (cached per device and dtype).
    """

    name: ClassVar[str] = ""
    # Set by every registered subclass (module docstring); checked when the class is created.
    needs_data: ClassVar[bool]
    option_names: ClassVar[tuple[str, ...]]
    positional: ClassVar[bool]
    label: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if not name:
            return
        for attr, kind in _DESCRIPTION.items():
            if not isinstance(getattr(cls, attr, None), kind):
                raise TypeError(f"basis {cls.__name__} must set {attr} to a {kind.__name__}")
        if not all(isinstance(o, str) for o in cls.option_names):
            raise TypeError(f"basis {cls.__name__} must list its option_names as strings")
        known = BASES.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"basis name {name!r} is taken by {known.__name__}")
        BASES[name] = cls

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

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        """The layout of c (D,) float64; by default bars over the first components."""
        return self._bars(c, max_bars, f"{self.label} coefficients", "component")

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

    def _bars(self, c: np.ndarray, max_bars: int, title: str, x_title: str) -> CoefficientLayout:
        k = min(max_bars, c.size)
        return CoefficientLayout(
            "bars", c[:k], title, np.arange(k), x_title=x_title, y_title="coefficient"
        )

    def _frequency_layout(self, c: np.ndarray, title: str) -> CoefficientLayout:
        """Each channel's `frequency_map` side by side, on the frequency axes of channel 0."""
        ch, h, w = self.shape
        maps = [self.frequency_map(p) for p in c.reshape(ch, h * w)]
        img = np.concatenate([m for m, _, _ in maps], axis=1)
        _, kx, ky = maps[0]
        kx = np.concatenate([kx] * ch) if ch > 1 else kx
        return CoefficientLayout("image", img, title, kx, ky, "k_x", "k_y")

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

    def coefficient_layout(self, c: Tensor | np.ndarray, max_bars: int = 128) -> CoefficientLayout:
        """How to draw one coefficient vector c (D,) (on the CPU, float64): the image or bars
        this basis is usually shown as; bars show at most the first max_bars components."""
        if isinstance(c, Tensor):
            c = c.detach().to("cpu", torch.float64).numpy()
        c = np.asarray(c, dtype=np.float64).reshape(-1)
        if c.size != self.dim:
            raise ValueError(f"c must have {self.dim} entries, got {c.size}")
        return self._layout(c, max_bars)

    def spec(self) -> dict[str, Any]:
        """Plain JSON-able description: name, shape and the options that rebuild the basis."""
        return {"name": self.name, "shape": list(self.shape), **self._options()}

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.spec().items() if k != "name")
