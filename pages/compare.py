"""Compare: two full configurations A and B with the same seed and noise, cheap metrics against
held-out data, and each metric against softness (the interactive FID-vs-softness figure)."""

import streamlit as st

from ui import advisor, compare_view, denoiser_choice, prior_term, run_controls, runs, widgets
from ui.sidebar import data_spec
from ui.timing import before_run

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
        method = run_controls.sampler_picker(prefix)
        steps = run_controls.steps_input(prefix)
        sides.append((name, spec, method, steps))
s1, s2, s3 = st.columns(3)
with s1:
    kind = denoiser_choice.denoiser_picker(data, prefixes=("", "b_"))
with s2:
    batch = run_controls.batch_input()
with s3:
    limit = run_controls.time_limit_input()

problems = compare_view.problems(sides, kind, batch, data)
if problems:
    for p in problems:
        st.error(p)
    st.stop()
specs = [runs.RunSpec(spec, kind, method, steps, batch) for _, spec, method, steps in sides]
procs = [
    widgets.attempt(f"Process {n}", denoiser_choice.process_for, s.process, kind)
    for n, s in zip("AB", specs, strict=True)
]
dens = [
    widgets.attempt(f"Denoiser {n}", denoiser_choice.denoiser, s.process, kind)
    for n, s in zip("AB", specs, strict=True)
]
for col, n, s, proc in zip(st.columns(2), "AB", specs, procs, strict=True):
    with col:
        prior_term.note(s.process, proc, key=kind, label=f"{n}: ")
        advisor.note(s.process, proc, kind, s.method, s.steps, label=f"{n}: ")
ests = compare_view.estimates(specs, procs, dens, limit)
if st.button(
    "Run A and B",
    type="primary",
    key="run_compare",
    help="Sample both configurations with the sidebar's seed.",
    disabled=not all(e.ok for e in ests),
):
    for (name, *_), s, proc, den, e in zip(sides, specs, procs, dens, ests, strict=True):
        runs.execute(("single", s), s, proc, den, None, e.limit, f"{name}: ", e.seconds)
results = [runs.recall(("single", s)) for s in specs]
if all(r is not None for r in results):
    compare_view.side_by_side(["A", "B"], specs, results, data, list(zip(procs, dens, strict=True)))
else:
    st.info(f"Press **Run A and B** to draw {batch} samples of each configuration.")

# ---------------------------------------------------------------- softness sweep chart
st.subheader("Metrics against softness")
a_spec, a_method, a_steps = sides[0][1], sides[0][2], sides[0][3]
st.caption(
    f"Configuration A ({a_spec.basis.label()}, order {a_spec.schedule.order}, "
    f"{run_controls.SAMPLER_LABELS[a_method]}, {a_steps} steps) at several softness values, "
    "all with the same seed: the interactive version of the paper's "
    "FID-vs-softness figure."
)
softnesses = run_controls.sweep_input()
problem = compare_view.sweep_problem(a_spec, softnesses)
if problem:
    st.info(problem)
    st.stop()
sweep_key = ("sweep", specs[0], softnesses)
est = before_run(specs[0], procs[0], dens[0], limit, len(softnesses))
if st.button(
    "Run the softness sweep",
    key="run_sweep",
    help=f"{len(softnesses)} runs of configuration A.",
    disabled=not est.ok,
):
    runs.execute_sweep(sweep_key, specs[0], softnesses, est.limit, est.seconds)
sweep_runs = runs.recall(sweep_key)
if sweep_runs is None:
    st.stop()
compare_view.sweep_results(sweep_runs, specs[0])
