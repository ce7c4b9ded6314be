"""The sidebar every page shares: dataset (or the user's images), image size, device, seed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
import torch

from rgdiff_core.specs import DataSpec
from ui import cache, state

DATASET_HELP = {
    "digits": "8×8 handwritten digits (UCI, CC BY 4.0), scaled up",
    "glyphs": "handwriting-like digits drawn from Pillow's built-in font (60 000, generated)",
    "patches": "grey patches of five public-domain photographs",
    "fields": "Gaussian random fields with a power-law spectrum (exact Gaussian data)",
    "shapes": "circles, rectangles and triangles with sharp edges",
    "upload": "your own images (PNG, JPEG, …), centre-cropped and resized",
}


SPEC_KEY = "_rgdiff_data_spec"
_RUN = threading.local()  # .via_app: this thread is running a page from app.py's pg.run()


@contextmanager
def through_app() -> Iterator[None]:
    """app.py wraps pg.run() in this, so a page knows the shared sidebar was drawn this run."""
    _RUN.via_app = True
    try:
        yield
    finally:
        _RUN.via_app = False


def data_spec() -> DataSpec:
    """The DataSpec of the shared sidebar for this run; call it at the top of every page.

    Until some session of a fresh server has called st.navigation, Streamlit treats the
    pages/ folder the legacy way and runs a requested page file on its own, without app.py
    (no sidebar, no navigation; AppTest does this on every run). A page run that way turns
    the legacy mode off and reruns, so the run goes through app.py. The test is whether this
    run came through app.py, not Streamlit's class-wide legacy flag: when many sessions open
    at once on a fresh server, another session may clear that flag while this run is already
    a legacy one (it then showed the page with no sidebar and the URL's sidebar settings
    ignored). Should the flag ever be missing, the page draws the sidebar itself.
    """
    if getattr(_RUN, "via_app", False):
        return st.session_state.get(SPEC_KEY) or DataSpec(dataset=state.default("data"))
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # pragma: no cover - depends on Streamlit internals
        PagesManager = None  # noqa: N806
    if PagesManager is None or not hasattr(PagesManager, "uses_pages_directory"):
        return sidebar()  # pragma: no cover
    PagesManager.uses_pages_directory = False
    st.rerun()
    raise AssertionError("unreachable")  # pragma: no cover - st.rerun raises


def resolve_device(choice: str) -> tuple[str, str | None]:
    """(device, warning): auto -> CUDA if available else CPU; cuda without CUDA -> CPU."""
    has_cuda = torch.cuda.is_available()
    if choice == "cuda" and not has_cuda:
        return "cpu", "CUDA is not available on this machine; running on the CPU."
    if choice == "auto":
        return ("cuda" if has_cuda else "cpu"), None
    return choice, None


def sidebar() -> DataSpec:
    """Draw the shared sidebar and return the data choice as a DataSpec."""
    with st.sidebar:
        st.header("Data")
        name = st.selectbox(
            "Dataset",
            state.DATASETS,
            key="data",
            bind="query-params",
            index=state.DATASETS.index(state.default("data")),
            help="Images every page works on. "
            + "; ".join(f"**{k}**: {v}" for k, v in DATASET_HELP.items()),
        )
        size = st.selectbox(
            "Image size",
            state.SIZES,
            key="size",
            bind="query-params",
            index=state.SIZES.index(state.default("size")),
            help="Side length in pixels; images are resized to size × size (D = size²).",
        )
        upload = _uploads(int(size)) if name == "upload" else ""
        choice = st.selectbox(
            "Device",
            state.DEVICES,
            key="device",
            bind="query-params",
            help="Where the noising process runs. auto: CUDA when available, else the CPU.",
        )
        device, warning = resolve_device(choice)
        if warning:
            st.warning(warning)
        st.caption(f"Running on: **{cache.device_label(device)}**")
        seed = st.number_input(
            "Seed",
            min_value=0,
            max_value=state.SEED_MAX,
            value=state.default("seed"),
            step=1,
            key="seed",
            bind="query-params",
            help="Seeds every random draw (noise, prior samples, picked data items), so a "
            "link reproduces the same pictures.",
        )
    spec = DataSpec(dataset=name, size=int(size), device=device, seed=int(seed), upload=upload)
    st.session_state[SPEC_KEY] = spec
    return spec


def _uploads(size: int) -> str:
    """The image uploader; returns the digest of the decoded images, or "" if there are none
    or one is unreadable (the message names the file)."""
    files = st.file_uploader(
        "Your images",
        accept_multiple_files=True,
        key="data_upload",
        help="One or more image files (PNG, JPEG, GIF, TIFF, BMP, WebP): grey or colour, 8 or "
        "16 bit, with or without alpha; converted to grey, centre-cropped and resized. "
        "PCA and the data-matched prior need at least 2 images. Files are not part of "
        "the page link.",
    )
    if not files:
        st.info("Upload image files to use them as the dataset.")
        return ""
    try:
        return cache.register_uploads(tuple(f.getvalue() for f in files), size)
    except ValueError as err:
        names = ", ".join(f"{i}: {f.name}" for i, f in enumerate(files))
        st.error(f"Could not use the uploaded images ({names}): {err}")
        return ""
