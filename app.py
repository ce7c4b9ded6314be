"""rgdiff entry point: page config and navigation.

Run with `make run` (or `.venv/bin/python -m streamlit run app.py`); server address and headless
mode come from .streamlit/config.toml.
"""

import streamlit as st

TITLE = "rgdiff — unified diffusion explorer"


def home() -> None:
    st.title(TITLE)
    st.markdown(
        """
**Unified diffusion** builds a diffusion model from three independent choices:

- a **basis** in which the noising process is diagonal: pixels, PCA, Fourier, DCT or wavelets;
- a **prior**, the Gaussian the data relaxes to: white, data-matched or power law;
- a **noise schedule per component**: each basis component follows its own log-SNR path.

The soft-conditioning schedule ties these together with one knob, **softness**. At softness 1 all
components are denoised together, as in standard diffusion; as softness goes to 0 the components
are generated one group after another, each conditioned on those before, which is autoregressive
generation: coarse to fine in wavelets, low to high frequency in Fourier, by variance in PCA.
"""
    )
    st.caption("Paper: Gerdes, Welling, Cheng, *GUD: Generation with Unified Diffusion*, 2024.")


st.set_page_config(page_title="rgdiff", layout="wide")
pg = st.navigation([st.Page(home, title="Home", default=True)])
pg.run()
