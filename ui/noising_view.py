"""The Forward noising page's controls and views: the image (a data item or the user's own),
the processes A (and B), and at each t the noised image, its components, the per-group SNR
and the spectra; below, the 8-time strip and the GIF of each process. One noise draw (the
sidebar's seed) serves every t and both processes."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
import torch

from rgdiff_core import viz
from rgdiff_core.bases import BASES
from rgdiff_core.specs import DataSpec
from ui import cache, plots, prior_term, state, widgets

BIND: Any = "query-params"
STRIP_TIMES = tuple(float(t) for t in np.linspace(0, 1, 8))
GIF_TIMES = tuple(float(t) for t in np.linspace(0, 1, 33))


def image_controls(data: DataSpec) -> tuple[int, Any, str, bool]:
    """(data item, the user's own image file or None, grouping, A/B on)."""
    c1, c2, c3 = st.columns([1, 2, 1])
    n_data = len(widgets.attempt("Data", cache.dataset, data))
    with c1:
        item = widgets.item_input(n_data, "noise")
    with c2:
        own = st.file_uploader(
            "Or your own image",
            key="noise_upload",
            type=None,
            help="Any image file; converted to grey, centre-cropped and resized to the image "
            "size. Not part of the page link.",
        )
    with c3:
        how = widgets.grouping_picker()
        ab = st.toggle(
            "A/B comparison",
            value=state.default("ab"),
            key="ab",
            bind=BIND,
            help="Show the same image under a second process B, with the same noise.",
        )
    return item, own, how, ab


def chosen_image(data: DataSpec, item: int, own) -> tuple[torch.Tensor, str]:
    """(x_0 (1, 1, H, W), its cache key): the user's image if it decodes, else the item."""
    x0, x0_key = widgets.attempt("Image", cache.image, data, int(item)), f"{data}-{item}"
    if own is not None:
        try:
            x0 = cache.decode_uploads((own.getvalue(),), data.size)
            x0_key = f"upload-{own.file_id}-{data.size}"
        except ValueError as err:
            st.error(f"Could not use **{own.name}**: {err}. Showing data item {item} instead.")
    return x0, x0_key


def process_columns(data: DataSpec, ab: bool) -> list[tuple]:
    """The pickers of A (and B), each in its expander -> (name, spec, process, schedule info)
    of those that build; a problem is shown in its column."""
    procs = []
    pcols = st.columns(2 if ab else 1)
    for col, prefix, name in zip(pcols, ("", "b_"), ("A", "B"), strict=False):
        with col, st.expander(f"Process {name}", expanded=True):
            spec = widgets.process_picker(data, prefix)
            problem = widgets.check_process(spec)
            if problem:
                st.error(problem)
                continue
            proc = widgets.attempt(f"Process {name}", cache.process, spec, stop=False)
            info = widgets.attempt(
                f"Process {name}",
                cache.schedule,
                data,
                spec.basis,
                spec.prior,
                spec.schedule,
                stop=False,
            )
            if proc is not None and info is not None:
                prior_term.note(spec, proc)
                procs.append((name, spec, proc, info))
    return procs


def play_toggle() -> bool:
    return st.toggle(
        "▶ Play",
        value=state.default("play"),
        key="play",
        bind=BIND,
        help=f"Move t from 0 to 1 and round again, {state.PLAY_STEP:g} every "
        f"{state.PLAY_PERIOD_S:g} s; every view follows. Switch off to stop at the current t.",
    )


def time_view(procs: list[tuple], x0: torch.Tensor, data: DataSpec, how: str, play: bool) -> None:
    """The t slider and every view at t. While playing, each run of this fragment (every
    state.PLAY_PERIOD_S) first moves t on by state.PLAY_STEP, wrapping from 1 back to 0."""
    if play:
        t_now = float(st.session_state.get("t", state.default("t")))
        st.session_state["t"] = 0.0 if t_now >= 1.0 - 1e-9 else min(1.0, t_now + state.PLAY_STEP)
    t = st.slider(
        "t",
        0.0,
        1.0,
        value=state.default("t"),
        step=0.01,
        key="t",
        bind=BIND,
        help="Diffusion time: 0 = data, 1 = noise.",
    )
    cols = st.columns(len(procs))
    for col, (name, spec, proc, info) in zip(cols, procs, strict=True):
        with col:
            at_time(name, spec, proc, info, float(t), x0, data, how, len(procs))


def at_time(name, spec, proc, info, t: float, x0, data: DataSpec, how: str, n_procs: int) -> None:
    view = viz.noised_view(proc, x0, t, data.seed, info.v)
    st.markdown(f"**{name}: {spec.label()}**")
    zoom = max(1, (192 if n_procs > 1 else 320) // data.size)
    c1, c2 = st.columns(2)
    with c1:
        st.image(
            viz.upscale(viz.to_uint8(view.x_t[0]), zoom),
            caption=f"x_t at t = {t:.2f}",
            output_format="PNG",
        )
    with c2:
        layout = viz.coefficient_layout(proc.basis, view.coefficients)
        fig = component_fig(layout, BASES[spec.basis.name].positional, 220 if n_procs > 1 else 300)
        st.plotly_chart(fig, key=f"{name}_components")
    groups, _ = widgets.display_groups(proc.basis, info, spec.schedule, how)
    g_snr = viz.group_means(view.log_snr, groups) / np.log(10)  # log10 for the bars
    above = int((g_snr > 0).sum())
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            plots.snr_bars_fig(
                [n for n, _ in groups],
                g_snr,
                f"SNR > 1 in {above} of {len(groups)} groups",
            ),
            key=f"{name}_snr",
        )
    with c2:
        st.plotly_chart(noised_spectra_fig(x0, view, t), key=f"{name}_rapsd")


def noised_spectra_fig(x0: torch.Tensor, view, t: float):
    spectra = {
        "clean x_0": viz.rapsd_arrays(x0),
        f"x_t (t = {t:.2f})": viz.rapsd_arrays(view.x_t),
        "noise (x at t = 1)": viz.rapsd_arrays(view.noise),
    }
    return plots.spectra_fig(
        spectra,
        "RAPSD",
        styles={
            "clean x_0": {"color": "black", "dash": "dash"},
            "noise (x at t = 1)": {"color": "grey", "dash": "dot"},
        },
    )


def component_fig(layout, positional: bool, height: int):
    """Bars, the pixels themselves (a positional basis), or log10 |c| as an image."""
    title = "components at t" if layout.kind == "bars" else "components at t, log10 |c|"
    if layout.kind == "bars":
        return plots.bars_fig(
            layout.x, layout.values, title, layout.x_title, layout.y_title, height=height
        )
    if positional:
        return plots.image_fig(
            layout.values,
            "components at t (pixels)",
            zmin=-1,
            zmax=1,
            height=height,
            showscale=False,
        )
    logm = viz.log_magnitude(layout)
    return plots.image_fig(
        logm,
        title,
        layout.x,
        layout.y,
        colorscale=plots.SEQ,
        zmin=-3,
        zmax=max(1.0, float(logm.max())),
        bands=layout.bands,
        height=height,
        showscale=False,
    )


def strips(procs: list[tuple], x0: torch.Tensor, x0_key: str, data: DataSpec) -> None:
    """Per process: x_t at 8 times with one noise draw, and the strip and GIF downloads."""
    for name, spec, _, _ in procs:
        strip = cache.noised_strip(spec, x0_key, x0, STRIP_TIMES)
        img = viz.upscale(
            viz.to_uint8(viz.image_grid(strip, ncols=len(STRIP_TIMES), pad=1)),
            max(1, 96 // data.size),
        )
        st.image(
            img,
            caption=f"{name}: t = " + ", ".join(f"{t:.2f}" for t in STRIP_TIMES),
            output_format="PNG",
        )
        buttons = st.container(horizontal=True)
        buttons.download_button(
            "Strip as PNG",
            viz.encode_png(img),
            file_name=f"rgdiff-strip-{name}.png",
            mime="image/png",
            key=f"{name}_dl_png",
            help="The 8-frame strip above as one PNG image.",
        )
        gif = cache.noising_gif(spec, x0_key, x0, GIF_TIMES, max(1, 192 // data.size))
        buttons.download_button(
            "Animation as GIF",
            gif,
            file_name=f"rgdiff-noising-{name}.gif",
            mime="image/gif",
            key=f"{name}_dl_gif",
            help=f"{len(GIF_TIMES)} frames from t = 0 to 1, looping.",
        )
