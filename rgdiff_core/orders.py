"""Orderings -> labels l_i for the soft-conditioning schedule (docs/maths.md §2).

Lower label = generated first. Equal labels are generated together (block-autoregressive).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ORDERS", "order_labels"]

ORDERS = ("variance", "scale", "row", "column", "raster", "scale_column", "custom")


def order_labels(
    order: str, basis, variances: Tensor | None = None, labels: Tensor | None = None
) -> Tensor:
    """Labels l_i (D,) float64 for an ordering; lower label = generated first.

    variance: -log lambda_i (needs `variances` = data variance of each basis coefficient);
    scale: basis.scale() (coarse first); row / column / raster: spatial position of each
    component (bases with positions: pixel, wavelet); scale_column: scale + column / W
    (the paper's wavelet experiment); custom: `labels` given by the user.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    d = basis.dim
    if order == "variance":
        if variances is None:
            raise ValueError(
                "variances (data variance per component) are needed for order 'variance'"
            )
        lam = torch.as_tensor(variances, dtype=torch.float64).flatten()
        if lam.numel() != d or not ((lam > 0) & torch.isfinite(lam)).all():
            raise ValueError(f"variances must be {d} positive finite numbers")
        return -lam.log()
    if order == "custom":
        if labels is None:
            raise ValueError("labels are needed for order 'custom'")
        out = torch.as_tensor(labels, dtype=torch.float64).flatten()
        if out.numel() != d or not torch.isfinite(out).all():
            raise ValueError(f"labels must be {d} finite numbers, got {out.numel()}")
        return out
    if order == "scale":
        return basis.scale().to(torch.float64).cpu()
    pos = basis.positions()
    if pos is None:
        raise ValueError(
            f"order {order!r} needs a spatially localised basis (pixel or "
            f"wavelet), not {basis.name!r}"
        )
    pos = pos.to(torch.float64).cpu()
    width = basis.shape[2]
    row, col = pos[:, 0], pos[:, 1]
    if order == "row":
        return row
    if order == "column":
        return col
    if order == "raster":
        return row * width + col
    return basis.scale().to(torch.float64).cpu() + (col + 0.5) / width  # scale_column
