"""rgdiff entry point: page config, the shared sidebar and navigation.

Run with `make run` (or `.venv/bin/python -m streamlit run app.py`); server address and headless
mode come from .streamlit/config.toml. Every control is bound to the URL, so any view is a link.
"""

import streamlit as st

from ui import state
from ui.memory import freeze_imports, release_free_memory, start_trimmer
from ui.sidebar import sidebar, through_app

TITLE = "rgdiff — unified diffusion explorer"

PAGE_TITLES = {
    "basis": "Basis & prior",
    "schedule": "Schedule designer",
    "noising": "Forward noising",
    "sampling": "Sampling",
    "compare": "Compare",
    "conditioning": "Conditioning",
    "lecture": "Lecture view",
}
PAGE_ICONS = {
    "basis": ":material/grid_on:",
    "schedule": ":material/timeline:",
    "noising": ":material/blur_on:",
    "sampling": ":material/auto_awesome:",
    "compare": ":material/compare:",
    "conditioning": ":material/edit_square:",
    "lecture": ":material/co_present:",
}
PAGE_TEXT = {
    "basis": "basis functions, component variances, coefficients and prior samples",
    "schedule": "γ_i(t), log-SNR, generation order, stiffness, export",
    "noising": "one image noised over time, per component and per scale, with an A/B comparison",
    "sampling": "generate with an exact or trained denoiser, watch the trajectory, sweep softness",
    "compare": "two configurations side by side with sample metrics, and metrics against softness",
    "conditioning": "inpainting, super-resolution, low-pass conditioning and wider images",
    "lecture": "diffusion and autoregression side by side from one noise, large, one click",
}


def home() -> None:
    st.title(TITLE)
    st.markdown(
        """
**Unified diffusion** builds a diffusion model from three independent choices:

1. a **basis** in which the noising process is diagonal: pixels, PCA, Fourier, DCT or wavelets;
2. a **prior**, the Gaussian the data relaxes to: white, data-matched or power law;
3. a **noise schedule per component**: each basis component follows its own log-SNR path.

The soft-conditioning schedule ties these together with one knob, **softness** s, which moves
generation from diffusion (all components together) to autoregression (one group after another):
coarse to fine in wavelets, low to high frequency in Fourier, by variance in PCA.
"""
    )
    st.markdown("\n".join(f"- {line}." for line in state.SOFTNESS_STORY))
    st.caption("Paper: Gerdes, Welling, Cheng, *GUD: Generation with Unified Diffusion*, 2024.")
    st.subheader("Presets")
    st.caption(
        "Each preset opens a page with every setting in the link; the sidebar's data "
        "settings are kept. Change anything there and share the page's URL."
    )
    cols = st.columns(4)
    for i, preset in enumerate(state.PRESETS):
        with cols[i % 4].container(border=True):
            st.markdown(f"**{preset['name']}**")
            st.caption(preset["text"])
            params = state.query_params(preset["settings"])
            main = preset["page"]
            links = ("schedule", "noising", "sampling")
            for page in (main, *(p for p in links if p != main)):
                st.page_link(
                    state.PAGE_FILES[page],
                    label=PAGE_TITLES[page],
                    icon=":material/open_in_new:" if page == main else None,
                    query_params=params,
                )
    st.subheader("Pages")
    for page, text in PAGE_TEXT.items():
        st.page_link(state.PAGE_FILES[page], label=f"{PAGE_TITLES[page]}: {text}")


# An emoji favicon: a page's :material/...: icon would make the browser fetch its SVG from
# fonts.gstatic.com, and nothing may be fetched at run time.
st.set_page_config(page_title="rgdiff", page_icon="🌀", layout="wide")
pg = st.navigation(
    [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        *(
            st.Page(state.PAGE_FILES[page], title=title, icon=PAGE_ICONS[page])
            for page, title in PAGE_TITLES.items()
        ),
    ]
)
start_trimmer()  # once per server: what closed sessions free goes back to the OS
freeze_imports()  # once per server: Streamlit's collection after each run skips the imports
sidebar()
try:
    with through_app():
        pg.run()
finally:
    release_free_memory()  # what this run's temporaries freed goes back to the OS
