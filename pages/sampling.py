"""Sampling: draw samples with a chosen denoiser and sampler, play back the trajectory, sweep
the softness from diffusion to autoregression with one noise seed, and check Gaussian fields
against their true spectrum."""

import streamlit as st

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from ui import cache, plots, sampling, state, widgets
from ui.sidebar import data_spec

st.title("Sampling")
st.caption(
    "Integrate from the prior at t = 1 to the data at t = 0. Left: x_t, right: the denoised "
    "estimate x̂₀ the sampler uses; the softness moves generation from all components at "
    "once (diffusion) to one group after another (autoregression)."
)
data = data_spec()
with st.expander("Load settings (JSON)"):
    sampling.settings_loader()

soft_slot = st.container()
left, right = st.columns([1, 2.4], gap="large")
with left:
    spec = widgets.process_picker(data, "", softness_slot=soft_slot)
    with st.container(border=True):
        kind = sampling.denoiser_picker(data)
        method = sampling.sampler_picker()
        c1, c2 = st.columns(2)
        with c1:
            steps = sampling.steps_input()
        with c2:
            batch = sampling.batch_input()
        mode = st.radio(
            "Mode",
            ("single", "sweep"),
            key="mode",
            horizontal=True,
            bind="query-params",
            help="single: one run; sweep: the same noise seed at several softness values, "
            "side by side.",
        )
        softnesses = sampling.sweep_input("Sweep softness values", disabled=mode != "sweep")
        limit = sampling.time_limit_input()

with right:
    problem = widgets.check_process(spec) or sampling.check_steps(steps)
    if not problem and mode == "sweep":
        if spec.schedule.scalar:
            problem = (
                "The sweep varies the softness, which belongs to the soft-conditioning "
                "schedule: pick schedule family **soft**."
            )
        elif not softnesses:
            problem = "Pick at least one softness value to sweep."
    problem = problem or sampling.check_batch(
        batch, data, kind, len(softnesses) if mode == "sweep" else 1
    )
    if problem:
        st.error(problem)
        st.stop()
    process = widgets.attempt("Process", sampling.process_for, spec, kind)
    den = widgets.attempt("Denoiser", sampling.denoiser, spec, kind)
    stiff = sampling.stiffness_note(spec, steps, method)
    if not kind.startswith("gaussian"):
        sampling.terminal_note(spec, process, kind)
    run_spec = sampling.RunSpec(spec, kind, method, steps, batch)
    key = ("sweep", run_spec, softnesses) if mode == "sweep" else ("single", run_spec)

    b1, b2, _ = st.columns([1, 1, 4])
    go = b1.button("Run", type="primary", key="run_button", help="Sample with these settings.")
    b2.button(
        "Stop", key="stop_button", help="Stops a running sampling; the partial trajectory is kept."
    )
    if go and mode == "sweep":
        sampling.execute_sweep(key, run_spec, softnesses, time_limit=limit)
    elif go:
        sampling.execute(key, run_spec, process, den, time_limit=limit)
    result = sampling.recall(key)
    if result is None:
        st.info(
            f"Press **Run** to draw {batch} samples with {steps} "
            f"{sampling.SAMPLER_LABELS[method]} steps on "
            f"{cache.device_label(data.device)}."
        )
        st.stop()


# ---------------------------------------------------------------- results (right column)
with right:
    zoom = sampling.zoom_for(data.size, 64)
    runs = result if mode == "sweep" else [result]
    for r in runs:
        sampling.run_status(r)
    m = st.columns(5)
    m[0].metric("NFE", f"{sum(r.nfe for r in runs):,}", help="Denoiser evaluations.")
    m[1].metric("wall time", f"{sum(r.wall_s for r in runs):.2f} s")
    m[2].metric("steps/s", f"{sum(r.steps_done for r in runs) / sum(r.wall_s for r in runs):,.0f}")
    done = [r for r in runs if not r.cancelled]
    m[3].metric(
        "images/s",
        f"{sum(r.n for r in done) / sum(r.wall_s for r in done):,.1f}" if done else "—",
        help="Finished runs only.",
    )
    m[4].metric("device", cache.device_label(data.device))
    if kind == "empirical":
        st.info(
            "The exact empirical denoiser is the optimal denoiser of the training set: its "
            "samples reproduce training items (see the nearest-neighbour distance below)."
        )

    # ---------------------------------------------------------------- playback
    @st.fragment
    def playback_single(run) -> None:
        traj = run.trajectory
        if len(traj) == 0:
            st.info("No step finished, so there is no trajectory to play back.")
            return
        i = sampling.frame_slider(len(traj), "Playback over the stored trajectory (no resampling).")
        t = float(traj.t[i])
        st.image(
            sampling.frame_pair(traj, i, zoom=zoom),
            caption=f"step {traj.step[i]} of {run.steps}: x_t at t = {t:.3f} (left), x̂₀ (right)",
        )
        c1, c2 = st.columns(2)
        c1.plotly_chart(sampling.order_map_at(spec, t), key="order_map")
        c2.plotly_chart(sampling.committed_fig(spec, process, t), key="committed")

    @st.fragment
    def playback_sweep(runs) -> None:
        n = min(len(r.trajectory) for r in runs)
        if n == 0:
            st.info("No step finished, so there is no trajectory to play back.")
            return
        i = sampling.frame_slider(n, "One frame index for every softness (the same time t).")
        cols = st.columns(len(runs))
        for col, r in zip(cols, runs, strict=True):
            s = r.meta["softness"]
            sub = run_spec.with_softness(s).process
            t = float(r.trajectory.t[i])
            done, total = sampling.committed_count(sub, sampling.process_for(sub, kind), t)
            with col:
                st.markdown(f"**s = {state.format_softness(s)}**")
                st.image(sampling.grid_image(r.trajectory.x_t[i, :4], 2, zoom), caption="x_t")
                st.image(sampling.grid_image(r.trajectory.x0_hat[i, :4], 2, zoom), caption="x̂₀")
                st.caption(f"t = {t:.2f} · committed {done}/{total} groups")

    st.subheader("Trajectory")
    if mode == "sweep":
        st.caption(
            "The same noise seed at every softness: from simultaneous generation "
            "(diffusion, left) to sequential generation (autoregressive, right)."
        )
        playback_sweep(runs)
    else:
        playback_single(result)

    st.subheader("Samples")
    cols = st.columns(len(runs))
    for col, r in zip(cols, runs, strict=True):
        s = r.meta.get("softness")
        col.image(
            sampling.grid_image(r.samples[:64], 8 if len(runs) == 1 else 4, zoom),
            caption=(f"s = {state.format_softness(s)} · " if s is not None else "")
            + f"{min(r.n, 64)} of {r.n} samples",
        )

    # ---------------------------------------------------------------- checks
    samples = result.samples if mode == "single" else runs[-1].samples
    c1, c2 = st.columns(2)
    with c1:
        if kind == "gaussian_true" and mode == "single":
            if samples.shape[0] < 8:
                st.info("The spectrum check needs at least 8 samples.")
            else:
                _, p_true = ex.true_field_rapsd(
                    data.size, sampling.FIELDS_EXPONENT, sampling.FIELDS_MASS
                )
                chk = ex.spectrum_check(samples, p_true)
                st.plotly_chart(sampling.spectrum_check_fig(chk), key="spectrum_check")
                verdict = (
                    f"max |z| = {chk['max_abs_z']:.1f} over {len(chk['z'])} radial bins "
                    f"(limit {chk['n_sigma']:g} standard errors, n = {chk['n']})"
                )
                if chk["ok"]:
                    st.success(f"Matches the true spectrum within Monte-Carlo error: {verdict}.")
                else:
                    info = cache.schedule(data, spec.basis, spec.prior, spec.schedule)
                    snr1 = ex.terminal_snr(process, info.v)
                    st.error(
                        f"Does not match the true spectrum: {verdict}. Likely causes: "
                        f"{steps} steps vs {stiff['steps_needed']:,} needed (discretisation); "
                        f"signal left at t = 1 (max SNR {snr1:.2g}; the sampler starts from "
                        f"pure noise); a cancelled run."
                    )
                    st.button(
                        "Use the check settings (γ̃_n = 10, Heun, 128 samples)",
                        on_click=sampling.use_check_settings,
                        args=(stiff["steps_needed"],),
                        key="check_settings",
                    )
        else:
            ref = sampling.held_out(data)[:256]
            st.plotly_chart(
                plots.spectra_fig(
                    {"samples": viz.rapsd_arrays(samples), "held-out data": viz.rapsd_arrays(ref)},
                    "RAPSD: samples vs held-out data",
                    styles={"held-out data": {"color": "black", "dash": "dash"}},
                ),
                key="rapsd",
            )
    with c2:
        nn = ex.compare_metrics(samples, sampling.held_out(data), cache.dataset(data))
        ref_nn = sampling.reference_distance(data)
        st.metric(
            "nearest-neighbour distance to the training set",
            f"{nn['nn_train_mean']:.3f}",
            help="Mean over samples of the RMS pixel distance to the closest training "
            "image: 0 for a copy.",
        )
        st.caption(
            f"A held-out image scores {ref_nn:.3f}; samples far below that copy training items."
        )
        if kind == "gaussian_true" and mode == "sweep":
            st.caption("The spectrum check runs in single mode.")

    # ---------------------------------------------------------------- exports
    st.subheader("Export")
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Trajectory as GIF",
        lambda: sampling.trajectory_gif(runs),
        file_name="rgdiff-trajectory.gif",
        mime="image/gif",
        key="dl_gif",
        on_click="ignore",
        help="x_t | x̂₀ over the recorded frames (≤ 50).",
    )
    d2.download_button(
        "Samples as PNG",
        viz.encode_png(sampling.grid_image(samples[:64], 8, zoom)),
        file_name="rgdiff-samples.png",
        mime="image/png",
        key="dl_png",
        on_click="ignore",
        help="The first 64 samples as one image.",
    )
    run_info = {
        "device": runs[0].device,
        "nfe": sum(r.nfe for r in runs),
        "wall_s": sum(r.wall_s for r in runs),
        "cancelled": any(r.cancelled for r in runs),
    }
    d3.download_button(
        "Settings as JSON",
        sampling.settings_json(
            sampling.settings_snapshot(), run_info, process, widgets.labels_in_use()
        ),
        file_name="rgdiff-sampling.json",
        mime="application/json",
        key="dl_json",
        on_click="ignore",
        help="Every setting of this run; load it above to reproduce the samples.",
    )
