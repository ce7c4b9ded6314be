"""Real orthonormal bases acting on image batches (docs/maths.md §1, §3).

An image batch x (B, C, H, W) has coefficients c = U x (B, D), D = C*H*W, with U real and
orthonormal: decode(encode(x)) = x, ||c|| = ||x||, and white noise stays white, so every later
formula is the same in every basis. Components are channel-major, index = channel*(H*W) + j:
each basis applies one (H*W)-dimensional transform to every channel, except PCA, which acts on
the whole flattened D-vector. Within a channel components run coarse -> fine.

One module per family, each stating its own transform, scale and groups: pixel (U = I), pca
(covariance eigenvectors, fitted on data), fourier (real cos/sin pairs), dct (DCT-II per axis),
wavelet (periodized orthogonal DWT). base.py holds the Basis contract and the registry BASES,
which a family joins by setting its `name`; every module of this package is imported below, so
a new family's module needs no edit anywhere else.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Sequence
from typing import Any

# isort: off
# Import order is registration order: BASES lists the families simplest first.
from .base import BASES, Basis, CoefficientLayout
from .pixel import PixelBasis
from .pca import MAX_PCA_DIM, PCABasis
from .fourier import FourierBasis
from .dct import DCTBasis
from .wavelet import WaveletBasis, wavelet_mosaic

# isort: on

# A family module not named above joins the registry here, after them.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BASES",
    "MAX_PCA_DIM",
    "Basis",
    "CoefficientLayout",
    "DCTBasis",
    "FourierBasis",
    "PCABasis",
    "PixelBasis",
    "WaveletBasis",
    "make_basis",
    "wavelet_mosaic",
]


def _keywords(cls: type[Basis]) -> list[str]:
    """The keyword arguments cls(shape, ...) accepts: its options plus any fitted inputs."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, shape
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def make_basis(name: str, shape: Sequence[int], **options: Any) -> Basis:
    """Build the registered basis `name` for images of shape (C, H, W); see BASES.

    options: the class's option_names, and `data` (N, C, H, W) for a basis with needs_data."""
    cls = BASES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"name must be one of {sorted(BASES)}, got {name!r}")
    valid = _keywords(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"options {unknown} are not valid for basis {name!r}; valid options: {valid or 'none'}"
        )
    return cls(shape, **options)
