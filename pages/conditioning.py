"""Conditioning: hard conditioning as freezing components. Inpainting (known pixels),
super-resolution (known coarse wavelet levels), low-pass (known low frequencies) and extension
(a wider image, column by column)."""

import streamlit as st
import torch

from rgdiff_core import conditioning as cond
from rgdiff_core import viz
from ui import cache, plots, sampling, widgets
from ui.sidebar import data_spec

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

st.title("Conditioning")
st.caption(
    "Hard conditioning freezes components: the known ones keep their values (γ = −∞, β = 0) "
    "and every sampler generates the rest conditioned on them. Which components are known "
    "depends on the basis."
)
data = data_spec()


def drawn_hole(image, shape):
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


def use_basis(name: str) -> None:
    st.session_state["basis"] = name


def task_changed() -> None:
    """Switch to a basis the new task can use (the others stay as they were)."""
    new = st.session_state.get("task") or "inpainting"
    fits = ("fourier", "dct") if new == "low_pass" else (TASKS[new][0],)
    if st.session_state.get("basis") not in fits:
        st.session_state["basis"] = fits[0]


task = (
    st.segmented_control(
        "Task",
        tuple(TASKS),
        default="inpainting",
        key="task",
        required=True,
        bind="query-params",
        on_change=task_changed,
        help="; ".join(v[1] for v in TASKS.values()),
    )
    or "inpainting"
)
st.caption(TASKS[task][1])
left, right = st.columns([1, 2.2], gap="large")
with left:
    spec = widgets.process_picker(data, "")
    need = ("fourier", "dct") if task == "low_pass" else (TASKS[task][0],)
    if spec.basis.name not in need:
        st.warning(f"{TASKS[task][1].split(':')[0]} needs the {' or '.join(need)} basis.")
        st.button(f"Use the {need[0]} basis", on_click=use_basis, args=(need[0],), key="use_basis")
        st.stop()
    held_out = widgets.attempt("Data", sampling.held_out, data)
    widgets.clamp_state("cimg", 0, len(held_out) - 1)
    item = st.number_input(
        "Data item (held-out set)",
        0,
        len(held_out) - 1,
        value=0,
        key="cimg",
        bind="query-params",
        help="The input image, from the test split (not in the training set, so the "
        "exact empirical denoiser cannot simply return it).",
    )
    own = st.file_uploader(
        "Or your own image",
        key="cond_upload",
        help="Grey, centre-cropped and resized to the image size.",
    )
    shape = data.shape
    if task == "inpainting":
        preset = st.selectbox(
            "Mask",
            tuple(MASKS),
            key="mask",
            index=1,
            bind="query-params",
            help="Which pixels are known; the rest is generated. "
            + "; ".join(f"{k}: {v}" for k, v in MASKS.items()),
        )
        if preset == "rectangle":
            widgets.clamp_state("hole_rows", 0, data.size)
            widgets.clamp_state("hole_cols", 0, data.size)
            rows = st.slider(
                "Hole rows", 0, data.size, (data.size // 4, 3 * data.size // 4), key="hole_rows"
            )
            cols = st.slider(
                "Hole columns", 0, data.size, (data.size // 4, 3 * data.size // 4), key="hole_cols"
            )
        elif preset == "upload":
            mask_file = st.file_uploader(
                "Mask image", key="mask_file", help=f"White = known; resized to {data.size} px."
            )
    elif task == "super_resolution":
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
    elif task == "low_pass":
        widgets.clamp_state("k0", 0.0, data.size / 2 * 1.5)
        k0 = st.slider(
            "Known frequencies |k| ≤ k₀",
            0.0,
            data.size / 2 * 1.5,
            value=sampling.default("k0"),
            step=0.5,
            key="k0",
            bind="query-params",
            help="Cycles per image; k₀ = 0 fixes only the mean.",
        )
    else:
        widgets.clamp_state("extra", 1, cond.MAX_EXTRA_FACTOR * data.size)
        widgets.clamp_state("stride", 1, data.size - 1)
        extra = st.slider(
            "Extra columns",
            1,
            cond.MAX_EXTRA_FACTOR * data.size,
            value=min(sampling.default("extra"), data.size),
            key="extra",
            bind="query-params",
        )
        stride = st.slider(
            "Columns per window",
            1,
            data.size - 1,
            value=1,
            key="stride",
            bind="query-params",
            help="New columns generated per window (1: each column "
            "conditioned on all the W − 1 before it).",
        )
    with st.container(border=True):
        kind = sampling.denoiser_picker(data, key="cden")
        method = sampling.sampler_picker()
        steps = sampling.steps_input()
        n = sampling.batch_input("cn", "Samples")
        limit = sampling.time_limit_input()

with right:
    problem = (
        widgets.check_process(spec)
        or sampling.check_steps(steps)
        or sampling.check_batch(n, data, kind)
    )
    if problem:
        st.error(problem)
        st.stop()
    image, image_key = held_out[int(item) : int(item) + 1], f"test-{item}"
    if own is not None:
        try:
            image = cache.decode_uploads((own.getvalue(),), data.size)
            image_key = f"upload-{own.file_id}"
        except ValueError as err:
            st.error(f"Could not use **{own.name}**: {err}. Using data item {item}.")
    process = widgets.attempt("Process", sampling.process_for, spec, kind)
    den = widgets.attempt("Denoiser", sampling.denoiser, spec, kind)
    run_spec = sampling.RunSpec(spec, kind, method, steps, n)
    zoom = sampling.zoom_for(data.size, 128)

    if task == "extension":
        key = ("extension", run_spec, image_key, extra, stride)
        st.image(viz.upscale(viz.to_uint8(image[0]), zoom), caption="input (training width)")
        if st.button("Run", type="primary", key="run_cond"):
            widgets.attempt(
                "Extension",
                sampling.execute_extension,
                key,
                run_spec,
                process,
                den,
                image,
                int(extra),
                int(stride),
                time_limit=limit,
            )
        out = sampling.recall(key)
        if out is None:
            st.info(f"Press **Run** to add {extra} columns to {n} copies of the input.")
            st.stop()
        if out.shape[-1] < data.size + extra:
            st.warning(
                f"Stopped at the time limit: {out.shape[-1] - data.size} of {extra} columns done."
            )
        st.image(
            sampling.grid_image(out[:16], 2, zoom),
            caption=f"{min(n, 16)} extensions "
            f"to {out.shape[-1]} columns (input: the first {data.size})",
        )
        spread = cond.sample_spread(out)[0].numpy()
        st.plotly_chart(
            plots.image_fig(
                spread,
                "spread: per-pixel std over samples",
                colorscale=plots.SEQ,
                zmin=0,
                zmax=max(float(spread.max()), 1e-3),
                height=260,
            ),
            key="ext_spread",
        )
        st.stop()

    if task == "inpainting":
        if preset == "rectangle":
            known_px = widgets.attempt("Mask", cond.rectangle_hole, shape, rows, cols)
        elif preset == "draw":
            known_px = drawn_hole(image, shape)
        elif preset == "upload":
            if mask_file is None:
                st.info("Upload a mask image (white = known, black = to generate).")
                st.stop()
            try:
                mimg = cache.decode_uploads((mask_file.getvalue(),), data.size)
            except ValueError as err:
                st.error(f"Could not use **{mask_file.name}** as a mask: {err}")
                st.stop()
            known_px = cond.mask_from_image(mimg, shape)
        else:
            gen = torch.Generator().manual_seed(data.seed)
            known_px = cond.inpainting_mask(shape, preset, generator=gen)
        known = widgets.attempt("Condition", cond.pixel_condition, process, image, known_px)
        params = (preset, tuple(known_px.flatten().tolist()))
    elif task == "super_resolution":
        known = widgets.attempt("Condition", cond.wavelet_condition, process, image, int(res))
        params = (int(res),)
    else:
        known = widgets.attempt("Condition", cond.lowpass_condition, process, image, float(k0))
        params = (float(k0),)
    n_known = int(known[0].sum())
    key = ("cond", run_spec, task, params, image_key)

    c1, c2, c3 = st.columns(3)
    c1.image(viz.upscale(viz.to_uint8(image[0]), zoom), caption="input")
    view = cond.known_view(process, known)
    if task == "inpainting":
        c2.image(
            sampling.masked_rgb(image[0], known_px, zoom),
            caption=f"known: {n_known}/{process.dim}",
        )
    else:
        c2.image(
            viz.upscale(viz.to_uint8(view[0].clamp(-1, 1)), zoom),
            caption=f"known: {n_known}/{process.dim}",
        )
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
    if st.button("Run", type="primary", key="run_cond"):
        sampling.execute(key, run_spec, process, den, known=known, time_limit=limit)
    run = sampling.recall(key)
    if run is None:
        st.info(f"Press **Run** to draw {n} conditional samples.")
        st.stop()
    sampling.run_status(run)
    c3.image(
        viz.upscale(viz.to_uint8(run.samples.mean(0).clamp(-1, 1)), zoom),
        caption=f"mean of {run.n} samples",
    )
    st.image(
        sampling.grid_image(run.samples[:32], 8, zoom // 2 or 1),
        caption=f"{min(run.n, 32)} of {run.n} samples · {run.nfe} NFE · "
        f"{run.wall_s:.2f} s · {run.device}",
    )
    spread = cond.sample_spread(run.samples)[0].numpy()
    st.plotly_chart(
        plots.image_fig(
            spread,
            "spread: per-pixel std over samples"
            + (" (0 where known)" if task == "inpainting" else ""),
            colorscale=plots.SEQ,
            zmin=0,
            zmax=max(float(spread.max()), 1e-3),
            height=300,
        ),
        key="cond_spread",
    )
