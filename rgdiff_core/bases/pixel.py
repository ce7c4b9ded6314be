"""The pixel basis: U = I (docs/maths.md §3).

Component j of a channel is pixel (j // W, j % W); every scale is 0 and the groups are pixel
rows, so a pixel basis has no coarse-to-fine order of its own (orders come from positions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from .base import Basis, CoefficientLayout


class PixelBasis(Basis):
    """The identity: component j of a channel is pixel (j // W, j % W)."""

    name = "pixel"
    needs_data = False
    option_names = ()
    positional = True
    label = "pixel"

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

    def _layout(self, c: np.ndarray, max_bars: int) -> CoefficientLayout:
        """The image itself, channels side by side."""
        ch, h, w = self.shape
        img = np.concatenate([p.reshape(h, w) for p in c.reshape(ch, h * w)], axis=1)
        return CoefficientLayout(
            "image", img, "pixel values", np.arange(img.shape[1]), np.arange(h), "column", "row"
        )
