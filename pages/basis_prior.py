"""Basis & prior: what the chosen basis looks like on this data, and what the prior draws."""

import numpy as np
import streamlit as st

from rgdiff_core import viz
from ui import cache, plots, state, widgets
from ui.sidebar import data_spec

N_FUNCTIONS = 32
N_SHOW = 8

st.title("Basis & prior")
st.caption(
    "The basis U decides which components the noise acts on; the prior N(μ, UᵀS²U) is "
    "what the data relaxes to at t = 1. Both are chosen independently of the schedule."
)
data = data_spec()

c1, c2 = st.columns(2)
with c1:
    b = widgets.basis_picker("", data.size)
with c2:
    p = widgets.prior_picker("")
problem = widgets.check_basis(b, data.size)
if problem:
    st.error(problem)
    st.stop()
if b.name == "pca" and data.size == 64:
    st.info("PCA at 64 × 64 diagonalises a 4096 × 4096 covariance: the first time takes a while.")
widgets.attempt("Data", cache.dataset, data)
bas = widgets.attempt("Basis", cache.basis, data, b)
pri = widgets.attempt("Prior", cache.prior, data, b, p)
_, lam = widgets.attempt("Data statistics", cache.data_stats, data, b)
groups = bas.groups()
n_data = len(cache.dataset(data))

# ---------------------------------------------------------------- basis functions
st.subheader("Basis functions")
left, right = st.columns([3, 2])
with left:
    start = st.slider(
        "First basis function shown",
        0,
        bas.dim - 1,
        value=state.default("bf"),
        key="bf",
        bind="query-params",
        help=f"Shows {N_FUNCTIONS} basis functions (rows of U) from this index on, in the "
        f"basis's own order (coarse to fine; PCA by decreasing variance).",
    )
    start = min(int(start), bas.dim - 1)
    idx = list(range(start, min(start + N_FUNCTIONS, bas.dim)))
    grid = viz.basis_function_grid(bas, idx, ncols=8)
    zoom = max(1, 96 // data.size)
    st.image(
        viz.upscale(viz.to_uint8(grid), zoom),
        caption=f"components {idx[0]}–{idx[-1]} of {bas.dim}, each scaled to its own "
        f"peak (grey = 0)",
        output_format="PNG",
    )
with right:
    scale = bas.scale().numpy()
    log_x = b.name == "pca"
    x_title = {
        "pca": "rank + 1",
        "pixel": "scale (all pixels: 0)",
        "wavelet": "level (0 = approximation)",
    }.get(b.name, "|k| (cycles per image)")
    st.plotly_chart(
        plots.variance_fig(
            scale,
            lam,
            viz.group_index(groups, bas.dim),
            [n for n, _ in groups],
            x_title,
            log_x=log_x,
        ),
        key="variance_chart",
    )

# ---------------------------------------------------------------- one image, its coefficients
st.subheader("A data image and its coefficients")
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
    if layout.kind == "bars":
        fig = plots.bars_fig(layout.x, layout.values, layout.title, layout.x_title, layout.y_title)
    elif b.name == "pixel":
        fig = plots.image_fig(
            layout.values, layout.title, colorscale="gray", zmin=-1, zmax=1, colorbar_title="value"
        )
    else:
        logm = viz.log_magnitude(layout)
        fig = plots.image_fig(
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
    st.plotly_chart(fig, key="coefficients_chart")

# ---------------------------------------------------------------- prior vs data samples
st.subheader("Prior samples and data samples")
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
st.caption(
    f"Data variance λ spans {np.min(lam):.2g} … {np.max(lam):.2g} over {bas.dim} "
    f"components ({len(groups)} groups)."
)
