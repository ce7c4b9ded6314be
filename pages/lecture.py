"""Lecture view: diffusion and autoregressive generation side by side from the same noise, in
large type and large images for a lecture room; one click on Start runs and plays."""

import streamlit as st

from ui import lecture_view as view
from ui import runs
from ui.sidebar import data_spec

st.title("Lecture view")
data = data_spec()
view.compact_top()
# Laid out top to bottom; filled settings first, since the run depends on them.
head, body = st.container(), st.container()
with st.expander("Lecture settings: order, softness values, size, steps"):
    settings = view.settings_controls()
problem = view.check(settings, data)
if problem:
    head.error(problem)
    st.stop()
spec = view.run_spec(settings, data)
key = ("lecture", spec, settings.softnesses)

with head:
    c1, c2 = st.columns([1, 5], vertical_alignment="bottom")
    go = c1.button(
        "Start",
        type="primary",
        key="lecture_start",
        help="Generate from one noise draw at every softness value, then play them together.",
    )
    with c2:
        show, width, fps = view.view_controls()
with body:
    if go:
        view.start(key, spec, settings.softnesses)
    result = runs.recall(key)
    if result is None:
        st.markdown(
            f"### Press **Start**: {len(settings.softnesses)} softness values "
            f"({', '.join(view.softness_title(s) for s in settings.softnesses)}), "
            f"{settings.preset}, from the same noise."
        )
        st.stop()
    view.player(result, spec, show, width, fps)
    view.exports(result, spec, show, fps)
    st.caption(
        f"{data.dataset} {settings.size} × {settings.size} · {spec.process.basis.label()}, "
        f"white prior, clip · exact Gaussian denoiser fitted to the data · "
        f"{spec.steps} {view.SAMPLER} steps per run · seed {data.seed} (sidebar) · committed: "
        "groups whose true SNR has passed 1."
    )
