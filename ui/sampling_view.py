"""The Sampling page's results: throughput, trajectory playback (one run, or a sweep at one
frame index), sample grids, the checks against held-out data or the true field spectrum, and
the downloads. Every view reads a stored run, so moving a slider never resamples.
"""

from __future__ import annotations

import streamlit as st

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.data import FIELD_EXPONENT, FIELD_MASS
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import (
    cache,
    custom_labels,
    denoiser_choice,
    exports,
    held_out,
    plots,
    prior_term,
    run_controls,
    run_plots,
    state,
    timing,
)
from ui.runs import RunSpec, run_status, stopped_at, unfinished_label


def throughput(runs: list[ex.SamplingRun], device: str) -> None:
    """NFE, wall time, step rate, images/s (finished runs only), the device, and the time
    the run waited in the server's queue."""
    for r in runs:
        run_status(r)
    wall = sum(r.wall_s for r in runs)
    m = st.columns(5)
    m[0].metric("NFE", f"{sum(r.nfe for r in runs):,}", help="Denoiser evaluations.")
    m[1].metric("wall time", timing.format_duration(wall), help=f"{wall:.3f} s of sampling.")
    unit, rate = timing.format_rate(sum(r.steps_done for r in runs), wall)
    m[2].metric(unit, rate, help="Sampler steps per second (seconds per step below 1).")
    done = [r for r in runs if not r.cancelled]
    images = sum(r.n for r in done) / sum(r.wall_s for r in done) if done else 0.0
    m[3].metric("images/s", f"{images:.3g}" if images > 0 else "—", help="Finished runs only.")
    m[4].metric("device", cache.device_label(device))
    waited = runs[0].meta.get("queue_wait_s", 0.0)
    if waited >= 0.05:
        st.caption(f"Waited {timing.format_duration(waited)} in the server's run queue first.")


def frame_slider(n: int, help: str) -> int:
    """Playback position over n >= 1 recorded frames (the last one first). Not part of the
    page link: it indexes a stored run, not a setting."""
    if n == 1:
        st.caption("One frame was recorded.")
        return 0
    if st.session_state.get("frame", 0) >= n:
        st.session_state.pop("frame")
    return int(st.slider("Frame", 0, n - 1, n - 1, key="frame", help=help))


@st.fragment
def playback_single(run: ex.SamplingRun, spec: ProcessSpec, process, zoom: int) -> None:
    traj = run.trajectory
    if len(traj) == 0:
        st.info("No step finished, so there is no trajectory to play back.")
        return
    i = frame_slider(len(traj), "Playback over the stored trajectory (no resampling).")
    t = float(traj.t[i])
    st.image(
        exports.frame_pair(traj, i, zoom=zoom),
        caption=f"step {traj.step[i]} of {run.steps}: x_t at t = {t:.3f} (left), x̂₀ (right)",
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(run_plots.order_map_at(spec, t), key="order_map")
    c2.plotly_chart(run_plots.committed_fig(spec, process, t), key="committed")


@st.fragment
def playback_sweep(runs: list[ex.SamplingRun], run_spec: RunSpec, zoom: int) -> None:
    n = min(len(r.trajectory) for r in runs)
    if n == 0:
        st.info("No step finished, so there is no trajectory to play back.")
        return
    i = frame_slider(n, "One frame index for every softness (the same time t).")
    cols = st.columns(len(runs))
    for col, r in zip(cols, runs, strict=True):
        s = r.meta["softness"]
        sub = run_spec.with_softness(s).process
        t = float(r.trajectory.t[i])
        process = denoiser_choice.process_for(sub, run_spec.denoiser)
        done, total = run_plots.committed_count(sub, process, t)
        with col:
            st.markdown(f"**s = {state.format_softness(s)}**")
            st.image(exports.grid_image(r.trajectory.x_t[i, :4], 2, zoom), caption="x_t")
            st.image(exports.grid_image(r.trajectory.x0_hat[i, :4], 2, zoom), caption="x̂₀")
            st.caption(f"t = {t:.2f} · committed {done}/{total} groups")


def sample_grids(runs: list[ex.SamplingRun], zoom: int) -> None:
    """The samples of each run; an unfinished run's estimate says so under its grid."""
    cols = st.columns(len(runs))
    for col, r in zip(cols, runs, strict=True):
        s = r.meta.get("softness")
        shown = f"{min(r.n, 64)} of {r.n}"
        what = f"{unfinished_label(r)} ({shown})" if r.cancelled else f"{shown} samples"
        col.image(
            exports.grid_image(r.samples[:64], 8 if len(runs) == 1 else 4, zoom),
            caption=(f"s = {state.format_softness(s)} · " if s is not None else "") + what,
        )


def spectrum_check(samples, spec: ProcessSpec, process, steps: int, stiff: dict) -> None:
    """Gaussian fields with the true covariance: the samples' RAPSD against the true one,
    with what to change when they disagree beyond Monte-Carlo error."""
    if samples.shape[0] < 8:
        st.info("The spectrum check needs at least 8 samples.")
        return
    _, p_true = ex.true_field_rapsd(spec.data.size, FIELD_EXPONENT, FIELD_MASS)
    chk = ex.spectrum_check(samples, p_true)
    st.plotly_chart(run_plots.spectrum_check_fig(chk), key="spectrum_check")
    verdict = (
        f"max |z| = {chk['max_abs_z']:.1f} over {len(chk['z'])} radial bins "
        f"(limit {chk['n_sigma']:g} standard errors, n = {chk['n']})"
    )
    if chk["ok"]:
        st.success(f"Matches the true spectrum within Monte-Carlo error: {verdict}.")
        return
    lt = prior_term.value(spec, process)
    st.error(
        f"Does not match the true spectrum: {verdict}. Likely causes: "
        f"{steps} steps vs {stiff['steps_needed']:,} needed (discretisation); "
        f"signal left at t = 1 (prior term L_T = {lt:.3g} nat; the sampler starts from "
        f"pure noise); a cancelled run."
    )
    st.button(
        "Use the check settings (γ̃_n auto, Heun, 128 samples)",
        on_click=run_controls.use_check_settings,
        args=(stiff["steps_needed"],),
        key="check_settings",
    )


def checks(samples, run_spec: RunSpec, process, stiff: dict, single: bool) -> None:
    """Left: the spectrum check (true covariance, single mode) or the RAPSD against held-out
    data; right: the nearest-neighbour distance to the training set (memorisation)."""
    kind, data = run_spec.denoiser, run_spec.process.data
    c1, c2 = st.columns(2)
    with c1:
        if kind == "gaussian_true" and single:
            spectrum_check(samples, run_spec.process, process, run_spec.steps, stiff)
        else:
            ref = held_out.images(data)[:256]
            st.plotly_chart(
                plots.spectra_fig(
                    {"samples": viz.rapsd_arrays(samples), "held-out data": viz.rapsd_arrays(ref)},
                    "RAPSD: samples vs held-out data",
                    styles={"held-out data": {"color": "black", "dash": "dash"}},
                ),
                key="rapsd",
            )
    with c2:
        nn = held_out.nearest_train_distance(samples, data)
        ref_nn = held_out.reference_distance(data)
        st.metric(
            "nearest-neighbour distance to the training set",
            f"{nn:.3f}",
            help="Mean over samples of the RMS pixel distance to the closest training "
            "image: 0 for a copy.",
        )
        st.caption(
            f"A held-out image scores {ref_nn:.3f}; samples far below that copy training items."
        )
        if kind == "gaussian_true" and not single:
            st.caption("The spectrum check runs in single mode.")


def downloads(runs: list[ex.SamplingRun], samples, process, zoom: int) -> None:
    """The trajectory GIF, the samples PNG and the settings file that reproduces the run."""
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Trajectory as GIF",
        lambda: exports.trajectory_gif(runs),
        file_name="rgdiff-trajectory.gif",
        mime="image/gif",
        key="dl_gif",
        on_click="ignore",
        help="x_t | x̂₀ over the recorded frames (≤ 50).",
    )
    d2.download_button(
        "Samples as PNG",
        viz.encode_png(exports.grid_image(samples[:64], 8, zoom)),
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
        exports.settings_json(
            exports.settings_snapshot(), run_info, process, custom_labels.labels_in_use()
        ),
        file_name="rgdiff-sampling.json",
        mime="application/json",
        key="dl_json",
        on_click="ignore",
        help="Every setting of this run; load it above to reproduce the samples.",
    )


def results(result, run_spec: RunSpec, process, stiff: dict, sweep: bool, data: DataSpec) -> None:
    """Everything below the Run button once a run (or sweep) is stored."""
    zoom = exports.zoom_for(data.size, 64)
    runs = result if sweep else [result]
    throughput(runs, data.device)
    if run_spec.denoiser == "empirical":
        st.info(
            "The exact empirical denoiser is the optimal denoiser of the training set: its "
            "samples reproduce training items (see the nearest-neighbour distance below)."
        )
    st.subheader("Trajectory")
    if sweep:
        st.caption(
            "The same noise seed at every softness: from simultaneous generation "
            "(diffusion, left) to sequential generation (autoregressive, right)."
        )
        playback_sweep(runs, run_spec, zoom)
    else:
        playback_single(result, run_spec.process, process, zoom)
    unfinished = [r for r in runs if r.cancelled]
    if unfinished:
        st.subheader("Unfinished run: estimates, not samples")
        st.caption(
            f"The run stopped at t = {stopped_at(unfinished[0]):.2f}"
            " before reaching t = 0: below is the denoiser's last estimate x̂₀"
            + (", and the finished runs of the sweep before it." if len(runs) > 1 else ".")
        )
    else:
        st.subheader("Samples")
    sample_grids(runs, zoom)
    samples = runs[-1].samples
    checks(samples, run_spec, process, stiff, single=not sweep)
    st.subheader("Export")
    downloads(runs, samples, process, zoom)
