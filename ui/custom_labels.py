"""The custom generation order's labels: one number per component, loaded from a file (the
uploader under Order, a schedule file or a settings file) and held in the session by digest,
so they stay while the user moves between pages. Not part of a page link.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ui import cache, files


def labels_slot(prefix: str = "") -> str:
    """Session-state key of the custom labels in use: (digest, source name). Not a widget
    key, so the labels stay while the user moves between pages."""
    return f"_{prefix}custom_labels"


def hold_labels(prefix: str, labels: np.ndarray, source: str) -> None:
    """Make `labels` (from the file named `source`) the custom labels of `prefix`."""
    st.session_state[labels_slot(prefix)] = (cache.register_labels(labels), source)


def labels_in_use(prefix: str = "") -> np.ndarray | None:
    """The custom labels held for `prefix` (whatever the order now is), or None."""
    held = st.session_state.get(labels_slot(prefix))
    return cache.custom_labels(held[0]) if held else None


def custom_labels_input(prefix: str, dim: int) -> str:
    """Uploader of the custom order's labels; returns their digest ("" if none are loaded).
    A bad file shows st.error and keeps the labels loaded before."""
    f = st.file_uploader(
        "Labels file (custom order)",
        type=["csv", "txt", "json", "npy"],
        key=prefix + "labels_file",
        help=f"{dim} numbers, one per component in the basis's component order (for the "
        "pixel basis: row by row); the lowest is generated first. Text (commas or spaces, "
        "'#' comments), JSON (a list, or {\"labels\": [...]}) or NumPy .npy. 'Labels as "
        "CSV' on Schedule designer writes the current order's labels as a starting point. "
        "Not part of the page link.",
    )
    slot = labels_slot(prefix)
    if f is not None and st.session_state.get(slot + "_file") != f.file_id:
        try:
            arr = files.parse_labels(f.getvalue(), f.name, dim)
        except ValueError as err:
            st.error(f"Could not use **{f.name}** as labels: {err}.")
        else:
            hold_labels(prefix, arr, f.name)
            st.session_state[slot + "_file"] = f.file_id
    arr = labels_in_use(prefix)
    if arr is None:
        return ""
    held = st.session_state[slot]
    st.caption(
        f"Labels from **{held[1]}**: {arr.size} numbers, {np.unique(arr).size} distinct, "
        f"from {arr.min():.3g} to {arr.max():.3g}."
    )
    return held[0]
