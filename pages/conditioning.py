"""Conditioning: hard conditioning as freezing components. Inpainting (known pixels),
super-resolution (known coarse wavelet levels), low-pass (known low frequencies) and extension
(a wider image, column by column)."""

import streamlit as st

from rgdiff_core import viz
from ui import conditioning_view as view
from ui import denoiser_choice, exports, held_out, run_controls, runs, timing, widgets
from ui.sidebar import data_spec

st.title("Conditioning")
st.caption(
    "Hard conditioning freezes components: the known ones keep their values (γ = −∞, β = 0) "
    "and every sampler generates the rest conditioned on them. Which components are known "
    "depends on the basis."
)
data = data_spec()

task = view.task_picker()
view.open_on_task_basis(task)
left, right = st.columns([1, 2.2], gap="large")
with left:
    spec = widgets.process_picker(data, "")
    view.require_basis(task, spec)
    test_images = widgets.attempt("Data", held_out.images, data)
    item, own = view.input_controls(len(test_images))
    params = view.task_controls(task, data, spec)
    with st.container(border=True):
        kind = denoiser_choice.denoiser_picker(data, key="cden")
        method = run_controls.sampler_picker()
        steps = run_controls.steps_input()
        n = run_controls.batch_input("cn", "Samples")
        limit = run_controls.time_limit_input()

with right:
    problem = (
        widgets.check_process(spec)
        or run_controls.check_steps(steps)
        or run_controls.check_batch(n, data, kind)
    )
    if problem:
        st.error(problem)
        st.stop()
    image, image_key = view.input_image(test_images, item, own, data.size)
    process = widgets.attempt("Process", denoiser_choice.process_for, spec, kind)
    den = widgets.attempt("Denoiser", denoiser_choice.denoiser, spec, kind)
    run_spec = runs.RunSpec(spec, kind, method, steps, n)
    zoom = exports.zoom_for(data.size, 128)

    if task == "extension":
        extra, stride = params["extra"], params["stride"]
        key = ("extension", run_spec, image_key, extra, stride)
        st.image(viz.upscale(viz.to_uint8(image[0]), zoom), caption="input (training width)")
        est = timing.before_run(run_spec, process, den, limit, view.windows(extra, stride))
        if st.button("Run", type="primary", key="run_cond", disabled=not est.ok):
            widgets.attempt(
                "Extension",
                runs.execute_extension,
                key,
                run_spec,
                process,
                den,
                image,
                int(extra),
                int(stride),
                est.limit,
                est.seconds,
            )
        out = runs.recall(key)
        if out is None:
            st.info(f"Press **Run** to add {extra} columns to {n} copies of the input.")
            st.stop()
        view.show_extension(out, extra, n, data.size, zoom)
        st.stop()

    known, task_key, known_px = view.condition(task, params, process, image, data)
    key = ("cond", run_spec, task, task_key, image_key)
    mean_slot = view.show_known(task, process, image, known, known_px, zoom)
    est = timing.before_run(run_spec, process, den, limit)
    if st.button("Run", type="primary", key="run_cond", disabled=not est.ok):
        runs.execute(key, run_spec, process, den, known, est.limit, estimate_s=est.seconds)
    run = runs.recall(key)
    if run is None:
        st.info(f"Press **Run** to draw {n} conditional samples.")
        st.stop()
    view.show_samples(run, task, mean_slot, zoom)
