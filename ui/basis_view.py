"""The Basis & prior page's views: basis functions with the component variances, one data
image with its coefficients, and prior samples against data samples with their spectra."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from rgdiff_core import viz
from rgdiff_core.bases import BASES
from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec
from ui import cache, plots, state, widgets

BIND: Any = "query-params"
N_FUNCTIONS = 32
N_SHOW = 8
# The variance chart's x axis: what a basis's scale() means (PCA: rank, on a log axis).
SCALE_AXES = {
    "pca": ("rank + 1", True),
    "pixel": ("scale (all pixels: 0)", False),
    "wavelet": ("level (0 = approximation)", False),
}
FREQUENCY_AXIS = ("|k| (cycles per image)", False)


def slow_fit_note(b: BasisSpec, size: int) -> None:
    """A basis fitted on data diagonalises a D x D covariance: slow the first time at 64."""
    cls = BASES[b.name]
    if cls.needs_data and size == 64:
        st.info(
            f"{cls.label} at 64 × 64 diagonalises a 4096 × 4096 covariance: the first time "
            "takes a while."
        )


def basis_functions(bas, b: BasisSpec, lam: np.ndarray, size: int) -> None:
    """N_FUNCTIONS basis functions from a chosen index, beside the component variances."""
    left, right = st.columns([3, 2])
    with left:
        start = st.slider(
            "First basis function shown",
            0,
            bas.dim - 1,
            value=state.default("bf"),
            key="bf",
            bind=BIND,
            help=f"Shows {N_FUNCTIONS} basis functions (rows of U) from this index on, in the "
            f"basis's own order (coarse to fine; PCA by decreasing variance).",
        )
        start = min(int(start), bas.dim - 1)
        idx = list(range(start, min(start + N_FUNCTIONS, bas.dim)))
        grid = viz.basis_function_grid(bas, idx, ncols=8)
        st.image(
            viz.upscale(viz.to_uint8(grid), max(1, 96 // size)),
            caption=f"components {idx[0]}–{idx[-1]} of {bas.dim}, each scaled to its own "
            f"peak (grey = 0)",
            output_format="PNG",
        )
    with right:
        groups = bas.groups()
        x_title, log_x = SCALE_AXES.get(b.name, FREQUENCY_AXIS)
        st.plotly_chart(
            plots.variance_fig(
                bas.scale().numpy(),
                lam,
                viz.group_index(groups, bas.dim),
                [n for n, _ in groups],
                x_title,
                log_x=log_x,
            ),
            key="variance_chart",
        )


def coefficients_fig(layout, positional: bool):
    """Bars, the pixels themselves (a positional basis), or log10 |c| as an image."""
    if layout.kind == "bars":
        return plots.bars_fig(layout.x, layout.values, layout.title, layout.x_title, layout.y_title)
    if positional:
        return plots.image_fig(
            layout.values, layout.title, colorscale="gray", zmin=-1, zmax=1, colorbar_title="value"
        )
    logm = viz.log_magnitude(layout)
    return plots.image_fig(
        logm,
        layout.title,
        layout.x,
        layout.y,
        colorscale=plots.SEQ,
        zmin=max(float(logm.min()), float(logm.max()) - 5),
        bands=layout.bands,
        colorbar_title="log10 |c|",
        x_title=layout.x_title,
        y_title=layout.y_title,
    )


def image_and_coefficients(bas, b: BasisSpec, data: DataSpec, n_data: int) -> None:
    item = widgets.item_input(n_data, "show")
    x = widgets.attempt("Image", cache.image, data, int(item))
    layout = viz.coefficient_layout(bas, bas.encode(x)[0])
    c1, c2 = st.columns([1, 2])
    with c1:
        st.image(
            viz.upscale(viz.to_uint8(x[0]), max(1, 256 // data.size)),
            caption=f"item {item} of {data.dataset}",
            output_format="PNG",
        )
    with c2:
        fig = coefficients_fig(layout, BASES[b.name].positional)
        st.plotly_chart(fig, key="coefficients_chart")


def prior_and_data(data: DataSpec, b: BasisSpec, p: PriorSpec) -> None:
    """N_SHOW prior and data samples, and their spectra over 256 samples each."""
    st.caption(
        f"Prior: {p.label()} in the {b.label()} basis. Curves: radially averaged power "
        "spectral density over 256 samples each."
    )
    x_prior, x_data, spectra = widgets.attempt(
        "Prior samples", cache.prior_and_data_samples, data, b, p
    )
    c1, c2 = st.columns([3, 2])
    with c1:
        zoom = max(1, 64 // data.size)
        for name, xs in (("prior", x_prior), ("data", x_data)):
            st.image(
                viz.upscale(viz.to_uint8(viz.image_grid(xs[:N_SHOW], ncols=N_SHOW)), zoom),
                caption=f"{name} samples (values clipped to [-1, 1])",
                output_format="PNG",
            )
    with c2:
        st.plotly_chart(plots.spectra_fig(spectra, "RAPSD: prior vs data"), key="rapsd_chart")


def variance_span(lam: np.ndarray, dim: int, n_groups: int) -> None:
    st.caption(
        f"Data variance λ spans {np.min(lam):.2g} … {np.max(lam):.2g} over {dim} "
        f"components ({n_groups} groups)."
    )
