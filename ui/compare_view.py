"""The Compare page's results: A and B side by side with a metrics table against held-out
data, and each metric of configuration A's softness sweep as a chart and a table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from rgdiff_core import experiments as ex
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import (
    cache,
    denoiser_choice,
    exports,
    held_out,
    run_controls,
    run_plots,
    state,
    timing,
    widgets,
)
from ui.runs import RunSpec, run_status, unfinished_label


def problems(sides: list[tuple], kind: str, batch: int, data: DataSpec) -> list[str]:
    """Each configuration's problem (sides: (name, spec, method, steps)), then the memory of
    both runs together."""
    out = [
        f"**{name}:** {p}"
        for name, spec, _, steps in sides
        if (p := widgets.check_process(spec) or run_controls.check_steps(steps))
    ]
    problem = run_controls.check_batch(batch, data, kind, 2)
    return out + ([problem] if problem else [])


def estimates(
    specs: list[RunSpec], procs: list, dens: list, limit: float | None
) -> list[timing.Estimate]:
    """A's and B's estimates and time limits (ui/timing.py), one line each, or each refusal."""
    ests = [timing.estimate(s, p, d, 1, limit) for s, p, d in zip(specs, procs, dens, strict=True)]
    for name, e in zip("AB", ests, strict=True):
        if not e.ok:
            st.error(f"**{name}:** {e.problem}")
    if all(e.ok for e in ests):
        st.caption("  \n".join(f"{name}: {e.text}" for name, e in zip("AB", ests, strict=True)))
        busy = timing.outlook(specs[0].process.data.device)
        if busy:
            st.caption(busy)
    return ests


def side_by_side(
    names: list[str], specs: list[RunSpec], results: list, data: DataSpec, models: list
) -> None:
    """Sample grids of A and B, and one metrics row each (samples against held-out data, and
    the held-out images' bits/dim under the model) plus the held-out reference.
    models: (process, denoiser) of each side."""
    zoom = exports.zoom_for(data.size, 64)
    cols = st.columns(2)
    for col, name, s, r in zip(cols, names, specs, results, strict=True):
        with col:
            st.markdown(f"**{name}:** {s.process.label()}")
            run_status(r)
            shown = f"{min(r.n, 64)} of {r.n}"
            what = f"{unfinished_label(r)} ({shown})" if r.cancelled else f"{shown} samples"
            st.image(
                exports.grid_image(r.samples[:64], 8, zoom),
                caption=f"{what} · {r.method}, {r.steps} steps",
            )
    rows = {}
    for name, s, r, (proc, den) in zip(names, specs, results, models, strict=True):
        bits = held_out.bits_per_dim(s.process, s.denoiser, proc, den)
        rows[name] = {**held_out.metrics_row(r, data), **held_out.likelihood_row(bits)}
    rows["held-out data (reference)"] = {"NN distance to train": held_out.reference_distance(data)}
    # empty cells read "—", not "None", and the numbers stay numbers: the browser's grid shows
    # a missing value as its placeholder, whatever the Styler says
    st.dataframe(
        pd.DataFrame(rows).T.style.format(na_rep="—", precision=4),
        key="metrics_table",
        placeholder="—",
    )
    st.caption(
        "Lower is better for bits/dim, RAPSD log-error and sliced Wasserstein. NN distance to "
        "train is best near the reference row, the held-out set's own distance to the "
        "training set: samples well below it copy training items. NFE: denoiser "
        f"evaluations. Bits/dim: the negative ELBO of the first "
        f"{held_out.N_LIKELIHOOD} held-out images (continuous density on the [−1, 1] scale; "
        "+ log2 127.5 = 6.99 for 8-bit images), with its three terms in nats per image; not "
        "shown for the exact empirical denoiser, which knows only training items (its bound "
        "on held-out images has no limit)."
    )


def sweep_problem(spec: ProcessSpec, softnesses: tuple[float, ...]) -> str | None:
    if spec.schedule.scalar:
        return (
            "The sweep varies the softness of the soft-conditioning schedule: pick family "
            "**soft** for configuration A."
        )
    if not softnesses:
        return "Pick at least one softness value."
    return None


def sweep_results(sweep_runs: list[ex.SamplingRun], spec: RunSpec) -> None:
    """Each metric against softness (chart and table), with the held-out bits/dim of each
    softness's model, and what the sweep cost."""
    data = spec.process.data
    table = []
    for r in sweep_runs:
        sub = spec.with_softness(r.meta["softness"]).process
        proc = denoiser_choice.process_for(sub, spec.denoiser)
        den = denoiser_choice.denoiser(sub, spec.denoiser)
        bits = held_out.bits_per_dim(sub, spec.denoiser, proc, den)
        row = {**held_out.metrics_row(r, data), **held_out.likelihood_row(bits)}
        table.append({"softness": r.meta["softness"], **row})
    if any(r.cancelled for r in sweep_runs):
        st.warning("The sweep was cancelled: the last point is a partial run.")
    st.plotly_chart(
        run_plots.sweep_metrics_fig(table, held_out.reference_distance(data)), key="sweep_chart"
    )
    frame = pd.DataFrame(table)
    frame["softness"] = [state.format_softness(s) for s in frame["softness"]]
    st.dataframe(
        frame.set_index("softness").style.format(na_rep="—", precision=4),
        key="sweep_table",
        placeholder="—",
    )
    st.caption(
        "Rows from the largest softness (s = ∞: diffusion) down to the smallest "
        "(autoregressive). Lower is better for bits/dim, RAPSD log-error and sliced "
        "Wasserstein; NN distance to train is best near the held-out line. "
        f"{len(sweep_runs)} runs, {sum(r.n for r in sweep_runs)} samples in "
        f"{timing.format_duration(sum(r.wall_s for r in sweep_runs))} on "
        f"{cache.device_label(data.device)}; "
        f"NFE per run: {ex.nfe_count(spec.method, spec.steps)}."
    )
