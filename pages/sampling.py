"""Sampling: draw samples with a chosen denoiser and sampler, play back the trajectory, sweep
the softness from diffusion to autoregression with one noise seed, and check Gaussian fields
against their true spectrum."""

import streamlit as st

from ui import (
    advisor,
    cache,
    denoiser_choice,
    exports,
    run_controls,
    runs,
    sampling_view,
    timing,
    widgets,
)
from ui.sidebar import data_spec

st.title("Sampling")
st.caption(
    "Integrate from the prior at t = 1 to the data at t = 0. Left: x_t, right: the denoised "
    "estimate x̂₀ the sampler uses; the softness moves generation from all components at "
    "once (diffusion) to one group after another (autoregression)."
)
data = data_spec()
with st.expander("Load settings (JSON)"):
    exports.settings_loader()

soft_slot = st.container()
left, right = st.columns([1, 2.4], gap="large")
with left:
    spec = widgets.process_picker(data, "", softness_slot=soft_slot)
    with st.container(border=True):
        kind = denoiser_choice.denoiser_picker(data)
        method = run_controls.sampler_picker()
        c1, c2 = st.columns(2)
        with c1:
            steps = run_controls.steps_input()
        with c2:
            batch = run_controls.batch_input()
        mode = run_controls.mode_input()
        softnesses = run_controls.sweep_input("Sweep softness values", disabled=mode != "sweep")
        limit = run_controls.time_limit_input()

with right:
    sweep = mode == "sweep"
    problem = run_controls.check_sampling(spec, kind, steps, batch, softnesses if sweep else None)
    if problem:
        st.error(problem)
        st.stop()
    process = widgets.attempt("Process", denoiser_choice.process_for, spec, kind)
    den = widgets.attempt("Denoiser", denoiser_choice.denoiser, spec, kind)
    stiff = run_controls.stiffness_note(spec, steps, method)
    if sweep:
        advisor.sweep_notes(spec, kind, method, steps, softnesses)
    else:
        run_controls.terminal_note(spec, process, kind)
        advisor.note(spec, process, kind, method, steps)
    run_spec = runs.RunSpec(spec, kind, method, steps, batch)
    key = ("sweep", run_spec, softnesses) if sweep else ("single", run_spec)

    est = timing.before_run(run_spec, process, den, limit, len(softnesses) if sweep else 1)
    b1, b2, _ = st.columns([1, 1, 4])
    go = b1.button(
        "Run",
        type="primary",
        key="run_button",
        help="Sample with these settings.",
        disabled=not est.ok,
    )
    b2.button(
        "Stop", key="stop_button", help="Stops a running sampling; the partial trajectory is kept."
    )
    if go and sweep:
        runs.execute_sweep(key, run_spec, softnesses, est.limit, est.seconds)
    elif go:
        runs.execute(key, run_spec, process, den, time_limit=est.limit, estimate_s=est.seconds)
    result = runs.recall(key)
    if result is None:
        st.info(
            f"Press **Run** to draw {batch} samples with {steps} "
            f"{run_controls.SAMPLER_LABELS[method]} steps on "
            f"{cache.device_label(data.device)}."
        )
        st.stop()
    sampling_view.results(result, run_spec, process, stiff, sweep, data)
