"""Schedule designer: gamma_i(t), log-SNR_i(t), generation order, stiffness, export."""

import streamlit as st

from ui import cache, widgets
from ui import schedule_view as view
from ui.sidebar import data_spec

st.title("Schedule designer")
st.caption(
    "Every component i follows its own log-SNR path γ_i(t); the soft-conditioning "
    "schedule sets them from an ordering and one softness knob."
)
data = data_spec()

soft_slot = st.container()
left, right = st.columns([1, 2.4], gap="large")
with left:
    loaded = widgets.schedule_loader("")
    spec = widgets.process_picker(data, "", softness_slot=soft_slot)
    indiv = view.individual_checkbox()
    how = widgets.grouping_picker()
if spec.schedule.scalar:
    soft_slot.info(
        "Softness belongs to the soft-conditioning family: pick family **soft** to "
        "move between diffusion and autoregression."
    )

problem = widgets.check_process(spec)
if problem:
    st.error(problem)
    st.stop()
widgets.attempt("Data", cache.dataset, data)
bas = widgets.attempt("Basis", cache.basis, data, spec.basis)
pri = widgets.attempt("Prior", cache.prior, data, spec.basis, spec.prior)
info, curves, stiff = view.views(loaded, spec)
groups, group_word = widgets.display_groups(bas, info, spec.schedule, how)
shown = view.plotted(curves, info.order_labels, groups, group_word, indiv)
label_title = "label" if info.labels is not None else "−log λ"

with right:
    view.stiffness_readout(stiff)
    view.terminal(spec, info, bas, pri)
    view.curve_charts(curves, shown, label_title)
    view.order_and_plane(curves, info, groups)
    view.downloads(spec, bas, pri, info, curves, shown)
st.caption(f"{spec.label()} · D = {bas.dim}")
