"""The Conditioning page's controls and views: the task and the basis it needs, the input
image, each task's own controls, the known components built from them, and the results
(conditional samples, or the extended images) with their per-pixel spread."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
import torch

from rgdiff_core import conditioning as cond
from rgdiff_core import viz
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import cache, exports, plots, state, timing, widgets
from ui.runs import run_status, unfinished_label

BIND: Any = "query-params"
TASKS = {
    "inpainting": ("pixel", "Inpainting: known pixels"),
    "super_resolution": ("wavelet", "Super-resolution: known coarse wavelet levels"),
    "low_pass": ("fourier", "Low-pass: known low frequencies"),
    "extension": ("pixel", "Extension: a wider image, column by column"),
}
MASKS = {
    "left_half": "left half known",
    "centre_square": "centre square missing",
    "random_50": "random 50 % known",
    "rectangle": "a rectangular hole from two sliders",
    "draw": "draw the hole on the image (box or lasso)",
    "upload": "upload a mask image (white = known)",
    "all": "everything known",
    "none": "nothing known",
}


# ---------------------------------------------------------------- task and input


def bases_for(task: str) -> tuple[str, ...]:
    return ("fourier", "dct") if task == "low_pass" else (TASKS[task][0],)


def use_basis(name: str) -> None:
    st.session_state["basis"] = name


def task_changed() -> None:
    """Switch to a basis the new task can use (the others stay as they were)."""
    fits = bases_for(st.session_state.get("task") or "inpainting")
    if st.session_state.get("basis") not in fits:
        st.session_state["basis"] = fits[0]


def task_picker() -> str:
    task = (
        st.segmented_control(
            "Task",
            tuple(TASKS),
            default="inpainting",
            key="task",
            required=True,
            bind=BIND,
            on_change=task_changed,
            help="; ".join(v[1] for v in TASKS.values()),
        )
        or "inpainting"
    )
    st.caption(TASKS[task][1])
    return task


OPENED_KEY = "_rgdiff_conditioning_opened"


def open_on_task_basis(task: str) -> None:
    """The first time the page opens in a session, start on a basis the task can use (pixel
    for inpainting), unless the link names a basis; later choices are the user's own."""
    if st.session_state.get(OPENED_KEY):
        return
    st.session_state[OPENED_KEY] = True
    current = st.session_state.get("basis", state.default("basis"))
    if "basis" not in st.query_params and current not in bases_for(task):
        st.session_state["basis"] = bases_for(task)[0]


def require_basis(task: str, spec: ProcessSpec) -> None:
    """Stop the page with a button to switch when the basis cannot express the task."""
    need = bases_for(task)
    if spec.basis.name not in need:
        st.warning(f"{TASKS[task][1].split(':')[0]} needs the {' or '.join(need)} basis.")
        st.button(f"Use the {need[0]} basis", on_click=use_basis, args=(need[0],), key="use_basis")
        st.stop()


def input_controls(n_items: int) -> tuple[int, Any]:
    """(held-out item number, the user's own image file or None)."""
    widgets.clamp_state("cimg", 0, n_items - 1)
    item = st.number_input(
        "Data item (held-out set)",
        0,
        n_items - 1,
        value=0,
        key="cimg",
        bind=BIND,
        help="The input image, from the test split (not in the training set, so the "
        "exact empirical denoiser cannot simply return it).",
    )
    own = st.file_uploader(
        "Or your own image",
        key="cond_upload",
        help="Grey, centre-cropped and resized to the image size.",
    )
    return item, own


def input_image(held_out: torch.Tensor, item: int, own, size: int) -> tuple[torch.Tensor, str]:
    """(the input image (1, 1, H, W), its key in the run store)."""
    image, image_key = held_out[int(item) : int(item) + 1], f"test-{item}"
    if own is not None:
        try:
            image = cache.decode_uploads((own.getvalue(),), size)
            image_key = f"upload-{own.file_id}"
        except ValueError as err:
            st.error(f"Could not use **{own.name}**: {err}. Using data item {item}.")
    return image, image_key


# ---------------------------------------------------------------- each task's controls


def inpainting_controls(size: int) -> dict:
    preset = st.selectbox(
        "Mask",
        tuple(MASKS),
        key="mask",
        index=1,
        bind=BIND,
        help="Which pixels are known; the rest is generated. "
        + "; ".join(f"{k}: {v}" for k, v in MASKS.items()),
    )
    out: dict[str, Any] = {"preset": preset}
    if preset == "rectangle":
        widgets.clamp_state("hole_rows", 0, size)
        widgets.clamp_state("hole_cols", 0, size)
        half = (size // 4, 3 * size // 4)
        out["rows"] = st.slider("Hole rows", 0, size, half, key="hole_rows")
        out["cols"] = st.slider("Hole columns", 0, size, half, key="hole_cols")
    elif preset == "upload":
        out["mask_file"] = st.file_uploader(
            "Mask image", key="mask_file", help=f"White = known; resized to {size} px."
        )
    return out


def super_resolution_controls(data: DataSpec, spec: ProcessSpec) -> dict:
    bas = widgets.attempt("Basis", cache.basis, data, spec.basis)
    options = cond.wavelet_resolutions(bas)
    widgets.keep_option("res", tuple(options))
    res = st.select_slider(
        "Known resolution",
        options,
        value=options[len(options) // 2],
        key="res",
        format_func=lambda r: f"{r} × {r}",
        help="The coarse image of this size is known (the wavelet "
        "approximation and the coarsest detail levels).",
    )
    return {"res": res}


def low_pass_controls(size: int) -> dict:
    widgets.clamp_state("k0", 0.0, size / 2 * 1.5)
    k0 = st.slider(
        "Known frequencies |k| ≤ k₀",
        0.0,
        size / 2 * 1.5,
        value=state.default("k0"),
        step=0.5,
        key="k0",
        bind=BIND,
        help="Cycles per image; k₀ = 0 fixes only the mean.",
    )
    return {"k0": k0}


def extension_controls(size: int) -> dict:
    widgets.clamp_state("extra", 1, cond.MAX_EXTRA_FACTOR * size)
    widgets.clamp_state("stride", 1, size - 1)
    extra = st.slider(
        "Extra columns",
        1,
        cond.MAX_EXTRA_FACTOR * size,
        value=min(state.default("extra"), size),
        key="extra",
        bind=BIND,
    )
    stride = st.slider(
        "Columns per window",
        1,
        size - 1,
        value=1,
        key="stride",
        bind=BIND,
        help="New columns generated per window (1: each column "
        "conditioned on all the W − 1 before it).",
    )
    return {"extra": extra, "stride": stride}


def task_controls(task: str, data: DataSpec, spec: ProcessSpec) -> dict:
    """The task's own controls -> their values by name."""
    if task == "inpainting":
        return inpainting_controls(data.size)
    if task == "super_resolution":
        return super_resolution_controls(data, spec)
    if task == "low_pass":
        return low_pass_controls(data.size)
    return extension_controls(data.size)


# ---------------------------------------------------------------- the known components


def drawn_hole(image: torch.Tensor, shape) -> torch.Tensor:
    """The hole the user draws on the image with plotly's box or lasso selection -> known
    pixels; stops the page with a hint until something is drawn."""
    st.markdown(
        "**Draw the hole**: drag a box over the image, or pick the lasso in the "
        "chart's toolbar; double-click to start again."
    )
    event = st.plotly_chart(
        plots.mask_draw_fig(image[0, 0].float().numpy()),
        key="mask_draw",
        on_select="rerun",
        selection_mode=("box", "lasso"),
        config={"displaylogo": False},
    )
    hole = list(event.selection.point_indices) if event else []
    if not hole:
        st.info("Select the pixels to generate: every pixel is known until you draw a hole.")
        st.stop()
    return widgets.attempt("Mask", cond.hole_from_pixels, shape, hole)


def known_pixels(params: dict, image: torch.Tensor, data: DataSpec) -> torch.Tensor:
    """Inpainting: the known pixels (1, H, W) of the chosen mask; stops the page while an
    uploaded or drawn mask is missing."""
    preset, shape = params["preset"], data.shape
    if preset == "rectangle":
        return widgets.attempt("Mask", cond.rectangle_hole, shape, params["rows"], params["cols"])
    if preset == "draw":
        return drawn_hole(image, shape)
    if preset == "upload":
        mask_file = params["mask_file"]
        if mask_file is None:
            st.info("Upload a mask image (white = known, black = to generate).")
            st.stop()
        try:
            mimg = cache.decode_uploads((mask_file.getvalue(),), data.size)
        except ValueError as err:
            st.error(f"Could not use **{mask_file.name}** as a mask: {err}")
            st.stop()
        return cond.mask_from_image(mimg, shape)
    gen = torch.Generator().manual_seed(data.seed)
    return cond.inpainting_mask(shape, preset, generator=gen)


def condition(task: str, params: dict, process, image: torch.Tensor, data: DataSpec):
    """(known components (1, D) bool, the task's parameters for the store key, the known
    pixels (inpainting) or None)."""
    if task == "inpainting":
        known_px = known_pixels(params, image, data)
        known = widgets.attempt("Condition", cond.pixel_condition, process, image, known_px)
        return known, (params["preset"], tuple(known_px.flatten().tolist())), known_px
    if task == "super_resolution":
        res = int(params["res"])
        return (
            widgets.attempt("Condition", cond.wavelet_condition, process, image, res),
            (res,),
            None,
        )
    k0 = float(params["k0"])
    return widgets.attempt("Condition", cond.lowpass_condition, process, image, k0), (k0,), None


def masked_rgb(image: torch.Tensor, known: torch.Tensor, zoom: int) -> np.ndarray:
    """One grey image (1, H, W) as RGB with unknown pixels (known (1, H, W) False) in red."""
    grey = viz.to_uint8(image[0].clamp(-1, 1))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    unknown = ~known[0].cpu().numpy()
    rgb[unknown] = (0.4 * rgb[unknown] + np.array([150, 30, 30])).astype(np.uint8)
    return viz.upscale(rgb, zoom)


# ---------------------------------------------------------------- results


def spread_chart(samples: torch.Tensor, title: str, height: int, key: str) -> None:
    """Per-pixel standard deviation over the samples."""
    spread = cond.sample_spread(samples)[0].numpy()
    st.plotly_chart(
        plots.image_fig(
            spread,
            title,
            colorscale=plots.SEQ,
            zmin=0,
            zmax=max(float(spread.max()), 1e-3),
            height=height,
        ),
        key=key,
    )


def show_extension(out: torch.Tensor, extra: int, n: int, size: int, zoom: int) -> None:
    if out.shape[-1] < size + extra:
        st.warning(f"Stopped at the time limit: {out.shape[-1] - size} of {extra} columns done.")
    st.image(
        exports.grid_image(out[:16], 2, zoom),
        caption=f"{min(n, 16)} extensions to {out.shape[-1]} columns (input: the first {size})",
    )
    spread_chart(out, "spread: per-pixel std over samples", 260, "ext_spread")


def show_known(task: str, process, image, known, known_px, zoom: int):
    """Input | known part (| the samples' mean, filled later: the third column is returned)."""
    n_known = int(known[0].sum())
    c1, c2, c3 = st.columns(3)
    c1.image(viz.upscale(viz.to_uint8(image[0]), zoom), caption="input")
    if task == "inpainting":
        shown = masked_rgb(image[0], known_px, zoom)
    else:
        view = cond.known_view(process, known)
        shown = viz.upscale(viz.to_uint8(view[0].clamp(-1, 1)), zoom)
    c2.image(shown, caption=f"known: {n_known}/{process.dim}")
    st.caption(
        "Known part: "
        + (
            "the known pixels; red ones are generated."
            if task == "inpainting"
            else "the known components' coefficients, every other coefficient 0."
        )
    )
    if n_known == process.dim:
        st.info("Every component is known: the samples are the input itself.")
    elif n_known == 0:
        st.info("Nothing is known: these are unconditional samples.")
    return c3


def windows(extra: int, stride: int) -> int:
    """Sampler runs of an extension: one per window of `stride` new columns."""
    return -(-int(extra) // max(1, int(stride)))


def show_samples(run, task: str, mean_slot, zoom: int) -> None:
    """The run's status, the samples' mean (into `mean_slot`), the samples and their spread."""
    run_status(run)
    mean_slot.image(
        viz.upscale(viz.to_uint8(run.samples.mean(0).clamp(-1, 1)), zoom),
        caption=f"mean of {run.n} {'estimates x̂₀ (unfinished)' if run.cancelled else 'samples'}",
    )
    shown = f"{min(run.n, 32)} of {run.n}"
    what = f"{unfinished_label(run)} ({shown})" if run.cancelled else f"{shown} samples"
    st.image(
        exports.grid_image(run.samples[:32], 8, zoom // 2 or 1),
        caption=f"{what} · {run.nfe} NFE · {timing.format_duration(run.wall_s)} · {run.device}",
    )
    title = "spread: per-pixel std over samples" + (
        " (0 where known)" if task == "inpainting" else ""
    )
    spread_chart(run.samples, title, 300, "cond_spread")
