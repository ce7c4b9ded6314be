"""Schedule designer: gamma_i(t), log-SNR_i(t), generation order, stiffness, export."""

import streamlit as st

from rgdiff_core import viz
from ui import cache, files, plots, state, widgets
from ui.sidebar import data_spec

N_INDIVIDUAL = 64
STIFF_STEPS = 1000  # warn when a schedule needs more uniform steps than this

st.title("Schedule designer")
st.caption(
    "Every component i follows its own log-SNR path γ_i(t); the soft-conditioning "
    "schedule sets them from an ordering and one softness knob."
)
data = data_spec()

soft_slot = st.container()
left, right = st.columns([1, 2.4], gap="large")
with left:
    loaded = widgets.schedule_loader("")
    spec = widgets.process_picker(data, "", softness_slot=soft_slot)
    indiv = st.checkbox(
        "Single components",
        value=state.default("indiv"),
        key="indiv",
        bind="query-params",
        help=f"Plot up to {N_INDIVIDUAL} single components, spread evenly over the generation "
        f"order and coloured by label, instead of one curve per group mean.",
    )
    how = widgets.grouping_picker()
if spec.schedule.scalar:
    soft_slot.info(
        "Softness belongs to the soft-conditioning family: pick family **soft** to "
        "move between diffusion and autoregression."
    )

problem = widgets.check_process(spec)
if problem:
    st.error(problem)
    st.stop()
b, p, s = spec.basis, spec.prior, spec.schedule
widgets.attempt("Data", cache.dataset, data)
bas = widgets.attempt("Basis", cache.basis, data, b)
pri = widgets.attempt("Prior", cache.prior, data, b, p)
views = None
if loaded is not None:  # a schedule file without settings replaces the controls' schedule
    views = widgets.attempt(
        "Loaded schedule (the controls' schedule is shown instead)",
        cache.uploaded_schedule_views,
        loaded,
        data,
        b,
        p,
        stop=False,
    )
if views is None:
    views = (
        widgets.attempt("Schedule", cache.schedule, data, b, p, s),
        cache.curves(spec),
        cache.schedule_stiffness(spec),
    )
info, curves, stiff = views

groups, group_word = widgets.display_groups(bas, info, s, how)
names = [n for n, _ in groups]
labels = info.order_labels
label_title = "label" if info.labels is not None else "−log λ"

with right:
    # ------------------------------------------------------------ stiffness readout
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "max β",
        f"{stiff['max_beta']:.3g}",
        help="Largest OU rate β = σ² dγ/dt over t and components.",
    )
    m2.metric("max dγ/dt", f"{stiff['max_dgamma_dt']:.3g}")
    m3.metric(
        "steps needed",
        f"{stiff['steps_needed']:,}",
        help="Smallest number of uniform steps with h·β ≤ 1, h·dγ/dt ≤ 2 and at least 4 "
        "steps inside the narrowest component window.",
    )
    if stiff["steps_needed"] > STIFF_STEPS:
        st.warning(
            f"Stiff schedule: a sampler needs about {stiff['steps_needed']:,} uniform "
            f"steps (h·β ≤ 1). More autoregressive schedules need more steps; raise the "
            f"softness to make it cheaper."
        )

    # ------------------------------------------------------------ curves
    if indiv:
        pick = viz.spread_components(labels, N_INDIVIDUAL)
        g_y, s_y = curves.gamma[:, pick], curves.log_snr[:, pick]
        c_names, c_colour = [f"component {i}" for i in pick], labels[pick]
    else:
        g_y = viz.group_means(curves.gamma, groups)
        s_y = viz.group_means(curves.log_snr, groups)
        c_names, c_colour = names, viz.group_means(labels, groups)
    what = "single components" if indiv else f"means of {group_word}"
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            plots.curves_fig(
                curves.t,
                g_y,
                c_names,
                c_colour,
                f"γ_i(t), {what}",
                "γ = −log SNR (whitened)",
                label_title,
            ),
            key="gamma_chart",
        )
    with c2:
        st.plotly_chart(
            plots.curves_fig(
                curves.t,
                s_y,
                c_names,
                c_colour,
                f"true log-SNR_i(t), {what}",
                "log SNR = log v − γ",
                label_title,
                hline=0.0,
            ),
            key="snr_chart",
        )

    # ------------------------------------------------------------ order map and plane
    c1, c2 = st.columns(2)
    with c1:
        omap = viz.generation_order_map(curves.log_snr, labels, curves.t)
        st.plotly_chart(
            plots.order_map_fig(curves.t, omap["z"], omap["frontier"], omap["first"]),
            key="order_chart",
        )
    with c2:
        g1, g2 = st.columns(2)
        ga = g1.selectbox(
            "Group A",
            names,
            index=0,
            key="ga",
            bind="query-params",
            help="First axis of the log-SNR plane (a group of components).",
        )
        gb = g2.selectbox(
            "Group B",
            names,
            index=len(names) - 1,
            key="gb",
            bind="query-params",
            help="Second axis of the log-SNR plane.",
        )
        unit = viz.group_means(viz.unit_log_snr(curves.log_snr, info.lam), groups)
        ia, ib = names.index(ga), names.index(gb)
        st.plotly_chart(
            plots.plane_fig(unit[:, ia], unit[:, ib], curves.t, ga, gb), key="plane_chart"
        )
    st.caption(
        "Plane axes: log SNR − log λ, the log-SNR a unit-variance component would have "
        "on the same path. One scalar schedule with a white prior runs along the "
        "diagonal; autoregressive schedules run along the edges (one group first)."
    )

    # ------------------------------------------------------------ export
    settings = {k: st.session_state.get(k, state.default(k)) for k in state.PROCESS_KEYS}
    data_info = {"dataset": data.dataset, "size": data.size}
    d1, d2, d3 = st.columns(3)
    d1.download_button(
        "Schedule as JSON",
        files.schedule_json(settings, data_info, bas, pri, info.schedule),
        file_name="rgdiff-schedule.json",
        mime="application/json",
        key="dl_json",
        help="Settings and the full schedule spec; load it again with 'Load a schedule'.",
    )
    d2.download_button(
        "Curves as CSV",
        viz.curves_csv(
            curves.t,
            {
                **{f"gamma[{n}]": g for n, g in zip(c_names, g_y.T, strict=True)},
                **{f"log_snr[{n}]": v for n, v in zip(c_names, s_y.T, strict=True)},
            },
        ),
        file_name="rgdiff-curves.csv",
        mime="text/csv",
        key="dl_csv",
        help=f"t and the plotted curves ({what}) as columns.",
    )
    label_what = f"{s.order} order" if info.labels is not None else "−log λ (variance order)"
    d3.download_button(
        "Labels as CSV",
        files.labels_csv(labels, f"{label_what}, {b.label()}, {data.size}×{data.size}"),
        file_name="rgdiff-labels.csv",
        mime="text/csv",
        key="dl_labels",
        help="The label of every component in the basis's order (lower = generated first): "
        "edit it and load it with order 'custom' to design your own generation order.",
    )
st.caption(f"{spec.label()} · D = {bas.dim}")
