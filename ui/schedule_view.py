"""The Schedule designer's views: the stiffness readout, γ_i(t) and log-SNR_i(t) curves (group
means or single components), the generation-order map, the log-SNR plane of two groups, and
the downloads (schedule JSON, curves CSV, labels CSV)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from rgdiff_core import viz
from rgdiff_core.process import Process
from rgdiff_core.specs import ProcessSpec
from ui import cache, files, plots, prior_term, state, widgets

BIND: Any = "query-params"
N_INDIVIDUAL = 64
STIFF_STEPS = 1000  # warn when a schedule needs more uniform steps than this


@dataclass
class Plotted:
    """The curves as drawn: (T, K) γ and log-SNR, one name and colour value per curve."""

    gamma: np.ndarray
    log_snr: np.ndarray
    names: list[str]
    colour: np.ndarray
    what: str  # "single components" or "means of ... groups"


def individual_checkbox() -> bool:
    return st.checkbox(
        "Single components",
        value=state.default("indiv"),
        key="indiv",
        bind=BIND,
        help=f"Plot up to {N_INDIVIDUAL} single components, spread evenly over the generation "
        f"order and coloured by label, instead of one curve per group mean.",
    )


def views(loaded, spec: ProcessSpec) -> tuple:
    """(schedule info, curves, stiffness) of the loaded schedule file when one is loaded and
    builds, else of the controls' schedule."""
    data, b, p, s = spec.data, spec.basis, spec.prior, spec.schedule
    out = None
    if loaded is not None:  # a schedule file without settings replaces the controls' schedule
        out = widgets.attempt(
            "Loaded schedule (the controls' schedule is shown instead)",
            cache.uploaded_schedule_views,
            loaded,
            data,
            b,
            p,
            stop=False,
        )
    if out is None:
        out = (
            widgets.attempt("Schedule", cache.schedule, data, b, p, s),
            cache.curves(spec),
            cache.schedule_stiffness(spec),
        )
    return out


def terminal(spec: ProcessSpec, info, bas, pri) -> None:
    """The prior term of the schedule shown: the controls' own, or a loaded file's."""
    controls = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    if info.schedule is controls.schedule:
        prior_term.note(spec)
        return
    digest = hashlib.sha1(json.dumps(info.schedule.spec(), default=str).encode()).hexdigest()
    prior_term.note(spec, Process(bas, pri, info.schedule), key=f"file:{digest}")


def stiffness_readout(stiff: dict) -> None:
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


def plotted(curves, labels: np.ndarray, groups: list, group_word: str, indiv: bool) -> Plotted:
    if indiv:
        pick = viz.spread_components(labels, N_INDIVIDUAL)
        return Plotted(
            curves.gamma[:, pick],
            curves.log_snr[:, pick],
            [f"component {i}" for i in pick],
            labels[pick],
            "single components",
        )
    return Plotted(
        viz.group_means(curves.gamma, groups),
        viz.group_means(curves.log_snr, groups),
        [n for n, _ in groups],
        viz.group_means(labels, groups),
        f"means of {group_word}",
    )


def curve_charts(curves, shown: Plotted, label_title: str) -> None:
    c1, c2 = st.columns(2)
    with c1:
        st.plotly_chart(
            plots.curves_fig(
                curves.t,
                shown.gamma,
                shown.names,
                shown.colour,
                f"γ_i(t), {shown.what}",
                "γ = −log SNR (whitened)",
                label_title,
            ),
            key="gamma_chart",
        )
    with c2:
        st.plotly_chart(
            plots.curves_fig(
                curves.t,
                shown.log_snr,
                shown.names,
                shown.colour,
                f"true log-SNR_i(t), {shown.what}",
                "log SNR = log v − γ",
                label_title,
                hline=0.0,
            ),
            key="snr_chart",
        )


def order_and_plane(curves, info, groups: list) -> None:
    """The generation-order map, and the unit log-SNR plane of two chosen groups."""
    names = [n for n, _ in groups]
    c1, c2 = st.columns(2)
    with c1:
        omap = viz.generation_order_map(curves.log_snr, info.order_labels, curves.t)
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
            bind=BIND,
            help="First axis of the log-SNR plane (a group of components).",
        )
        gb = g2.selectbox(
            "Group B",
            names,
            index=len(names) - 1,
            key="gb",
            bind=BIND,
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


def downloads(spec: ProcessSpec, bas, pri, info, curves, shown: Plotted) -> None:
    data, b, s = spec.data, spec.basis, spec.schedule
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
                **{f"gamma[{n}]": g for n, g in zip(shown.names, shown.gamma.T, strict=True)},
                **{f"log_snr[{n}]": v for n, v in zip(shown.names, shown.log_snr.T, strict=True)},
            },
        ),
        file_name="rgdiff-curves.csv",
        mime="text/csv",
        key="dl_csv",
        help=f"t and the plotted curves ({shown.what}) as columns.",
    )
    label_what = f"{s.order} order" if info.labels is not None else "−log λ (variance order)"
    d3.download_button(
        "Labels as CSV",
        files.labels_csv(info.order_labels, f"{label_what}, {b.label()}, {data.size}×{data.size}"),
        file_name="rgdiff-labels.csv",
        mime="text/csv",
        key="dl_labels",
        help="The label of every component in the basis's order (lower = generated first): "
        "edit it and load it with order 'custom' to design your own generation order.",
    )
