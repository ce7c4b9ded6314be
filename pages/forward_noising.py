"""Forward noising: one image through the forward process, in data space and per component,
with one noise draw for every t (and for both processes of the A/B comparison)."""

import streamlit as st

from ui import noising_view as view
from ui import state
from ui.sidebar import data_spec

st.title("Forward noising")
st.caption(
    "x_t = decode(α_t ⊙ u + σ_t ⊙ ε) with one fixed noise draw ε (seed in the sidebar): "
    "moving t changes only α_t and σ_t."
)
data = data_spec()

# ---------------------------------------------------------------- image and processes
item, own, how, ab = view.image_controls(data)
x0, x0_key = view.chosen_image(data, item, own)
procs = view.process_columns(data, ab)
if not procs:
    st.stop()

# ---------------------------------------------------------------- the time slider and views
play = view.play_toggle()
st.fragment(view.time_view, run_every=state.PLAY_PERIOD_S if play else None)(
    procs, x0, data, how, play
)

# ---------------------------------------------------------------- strips and downloads
st.subheader("Strip: 8 times, one noise draw")
view.strips(procs, x0, x0_key, data)
