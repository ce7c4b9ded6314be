"""Basis & prior: what the chosen basis looks like on this data, and what the prior draws."""

import streamlit as st

from ui import basis_view as view
from ui import cache, widgets
from ui.sidebar import data_spec

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
view.slow_fit_note(b, data.size)
widgets.attempt("Data", cache.dataset, data)
bas = widgets.attempt("Basis", cache.basis, data, b)
pri = widgets.attempt("Prior", cache.prior, data, b, p)
_, lam = widgets.attempt("Data statistics", cache.data_stats, data, b)
n_data = len(cache.dataset(data))

st.subheader("Basis functions")
view.basis_functions(bas, b, lam, data.size)

st.subheader("A data image and its coefficients")
view.image_and_coefficients(bas, b, data, n_data)

st.subheader("Prior samples and data samples")
view.prior_and_data(data, b, p)
view.variance_span(lam, bas.dim, len(bas.groups()))
