"""Compare: two full configurations A and B with the same seed and noise, cheap metrics against
held-out data, and each metric against softness (the interactive FID-vs-softness figure)."""

import pandas as pd
import streamlit as st

from rgdiff_core import experiments as ex
from ui import cache, sampling, state, widgets
from ui.sidebar import data_spec

st.title("Compare")
st.caption(
    "Two configurations drawn with the same seed, so both start from the same noise (in "
    "whitened components). Metrics against held-out data: RAPSD log-error and sliced "
    "Wasserstein distance (lower is closer), and the nearest-neighbour distance to the "
    "training set (memorisation: 0 for a copy)."
)
data = data_spec()

c1, c2 = st.columns(2)
sides = []
for col, prefix, name in ((c1, "", "A"), (c2, "b_", "B")):
    with col, st.expander(f"Configuration {name}", expanded=True):
        spec = widgets.process_picker(data, prefix)
        method = sampling.sampler_picker(prefix)
        steps = sampling.steps_input(prefix)
        sides.append((name, spec, method, steps))
s1, s2, s3 = st.columns(3)
with s1:
    kind = sampling.denoiser_picker(data)
with s2:
    batch = sampling.batch_input()
with s3:
    limit = sampling.time_limit_input()

problems = [
    f"**{name}:** {p}"
    for name, spec, _, steps in sides
    if (p := widgets.check_process(spec) or sampling.check_steps(steps))
]
problem = sampling.check_batch(batch, data, kind, 2)
if problems or problem:
    for p in problems + ([problem] if problem else []):
        st.error(p)
    st.stop()
specs = [sampling.RunSpec(spec, kind, method, steps, batch) for _, spec, method, steps in sides]
procs = [
    widgets.attempt(f"Process {n}", sampling.process_for, s.process, kind)
    for n, s in zip("AB", specs, strict=True)
]
dens = [
    widgets.attempt(f"Denoiser {n}", sampling.denoiser, s.process, kind)
    for n, s in zip("AB", specs, strict=True)
]
if st.button(
    "Run A and B",
    type="primary",
    key="run_compare",
    help="Sample both configurations with the sidebar's seed.",
):
    for (name, *_), s, proc, den in zip(sides, specs, procs, dens, strict=True):
        sampling.execute(("single", s), s, proc, den, time_limit=limit, label=f"{name}: ")
runs = [sampling.recall(("single", s)) for s in specs]

if all(r is not None for r in runs):
    zoom = sampling.zoom_for(data.size, 64)
    cols = st.columns(2)
    for col, (name, spec, *_), r in zip(cols, sides, runs, strict=True):
        with col:
            st.markdown(f"**{name}:** {spec.label()}")
            sampling.run_status(r)
            st.image(
                sampling.grid_image(r.samples[:64], 8, zoom),
                caption=f"{min(r.n, 64)} of {r.n} samples · {r.method}, {r.steps} steps",
            )
    rows = {name: sampling.metrics_row(r, data) for (name, *_), r in zip(sides, runs, strict=True)}
    rows["held-out data (reference)"] = {"NN distance to train": sampling.reference_distance(data)}
    st.dataframe(pd.DataFrame(rows).T, key="metrics_table")
    st.caption(
        "NFE: denoiser evaluations. The reference row is the held-out set's own "
        "distance to the training set: samples well below it copy training items."
    )
else:
    st.info(f"Press **Run A and B** to draw {batch} samples of each configuration.")

# ---------------------------------------------------------------- softness sweep chart
st.subheader("Metrics against softness")
a_spec, a_method, a_steps = sides[0][1], sides[0][2], sides[0][3]
st.caption(
    f"Configuration A ({a_spec.basis.label()}, order {a_spec.schedule.order}, "
    f"{sampling.SAMPLER_LABELS[a_method]}, {a_steps} steps) at several softness values, "
    "all with the same seed: the interactive version of the paper's "
    "FID-vs-softness figure."
)
softnesses = sampling.sweep_input()
if a_spec.schedule.scalar:
    st.info(
        "The sweep varies the softness of the soft-conditioning schedule: pick family "
        "**soft** for configuration A."
    )
    st.stop()
if not softnesses:
    st.info("Pick at least one softness value.")
    st.stop()
sweep_spec = specs[0]
sweep_key = ("sweep", sweep_spec, softnesses)
if st.button(
    "Run the softness sweep", key="run_sweep", help=f"{len(softnesses)} runs of configuration A."
):
    sampling.execute_sweep(sweep_key, sweep_spec, softnesses, time_limit=limit)
sweep_runs = sampling.recall(sweep_key)
if sweep_runs is None:
    st.stop()
table = [{"softness": r.meta["softness"], **sampling.metrics_row(r, data)} for r in sweep_runs]
if any(r.cancelled for r in sweep_runs):
    st.warning("The sweep was cancelled: the last point is a partial run.")
st.plotly_chart(
    sampling.sweep_metrics_fig(table, sampling.reference_distance(data)), key="sweep_chart"
)
frame = pd.DataFrame(table)
frame["softness"] = [state.format_softness(s) for s in frame["softness"]]
st.dataframe(frame.set_index("softness"), key="sweep_table")
st.caption(
    f"{len(sweep_runs)} runs, {sum(r.n for r in sweep_runs)} samples in "
    f"{sum(r.wall_s for r in sweep_runs):.1f} s on {cache.device_label(data.device)}; "
    f"NFE per run: {ex.nfe_count(a_method, a_steps)}."
)
