"""Figures of a run: where generation stands at time t (the generation-order map with t
marked, the per-group SNR bars), the Gaussian-field spectrum check, and each sample metric
against softness. Unlike ui/plots.py these may read the cached schedule of a spec.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.specs import ProcessSpec
from ui import cache, plots, state


def order_map_at(spec: ProcessSpec, t: float, height: int = 340):
    """The generation-order map of the spec's schedule with time t marked."""
    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    curves = cache.curves(spec)
    labels = info.labels if info.labels is not None else -np.log(info.lam)
    omap = viz.generation_order_map(curves.log_snr, labels, curves.t)
    fig = plots.order_map_fig(curves.t, omap["z"], omap["frontier"], omap["first"], height)
    fig.add_vline(
        x=float(t),
        line={"color": "#f1c40f", "width": 3},
        annotation_text=f"t = {t:.2f}",
        annotation_position="top",
    )
    return fig


def committed_fig(spec: ProcessSpec, process, t: float, height: int = 300):
    """Per-group true log10 SNR at t; groups above 0 (SNR > 1) count as committed."""
    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    groups = process.basis.groups()
    g = ex.group_log10_snr(process, info.v, t, groups)
    done = int((g > 0).sum())
    return plots.snr_bars_fig(
        [n for n, _ in groups], g, f"committed (SNR > 1): {done} of {len(groups)} groups", height
    )


def committed_count(spec: ProcessSpec, process, t: float) -> tuple[int, int]:
    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    groups = process.basis.groups()
    c = ex.committed_groups(process, info.v, t, groups)
    return int(c.sum()), len(groups)


def spectrum_check_fig(chk: dict, height: int = 340):
    k = chk["k"][1:]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=k,
            y=chk["p_true"][1:],
            mode="lines",
            name="true spectrum",
            line={"color": "black", "dash": "dash"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=k,
            y=chk["p"][1:],
            mode="markers",
            name=f"samples (n = {chk['n']}) ± 2 s.e.",
            marker={"color": "#2b5f8c", "size": 7},
            error_y={"type": "data", "array": 2 * chk["se"][1:], "visible": True},
        )
    )
    fig.update_xaxes(type="log", title="|k|")
    fig.update_yaxes(type="log", title="power P(k)", exponentformat="power")
    fig.update_layout(
        title={"text": "RAPSD: samples vs the true spectrum", "font": {"size": 14}},
        height=height,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


SWEEP_METRICS = (
    "bits/dim (held-out)",
    "RAPSD log-error",
    "sliced Wasserstein",
    "NN distance to train",
    "wall time (s)",
)
# Which way is better, under each metric's title: a sample set close to the held-out data has
# low bits/dim, spectrum error and Wasserstein distance, but its NN distance is that of the
# held-out data themselves (far below it: copies of training items).
SWEEP_BETTER = {
    "bits/dim (held-out)": "lower is better",
    "RAPSD log-error": "lower is better",
    "sliced Wasserstein": "lower is better",
    "NN distance to train": "best near the dotted line",
    "wall time (s)": "lower is faster",
}
SOFTNESS_AXIS = "softness s:  ∞ = diffusion (left)  ⟶  small s = autoregressive (right)"


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def sweep_metrics_fig(rows: list[dict], reference: float | None = None, height: int = 340):
    """Each metric against softness (categorical axis, diffusion s = ∞ on the left,
    autoregressive small s on the right), each titled with which way is better."""
    titles = [f"{m}<br><sup>{SWEEP_BETTER[m]}</sup>" for m in SWEEP_METRICS]
    fig = make_subplots(
        rows=1, cols=len(SWEEP_METRICS), subplot_titles=titles, x_title=SOFTNESS_AXIS
    )
    rows = sorted(rows, key=lambda r: -r["softness"])
    x = [state.format_softness(r["softness"]) for r in rows]
    for j, name in enumerate(SWEEP_METRICS, start=1):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r[name] for r in rows],
                mode="lines+markers",
                name=name,
                showlegend=False,
                line={"color": "#2b5f8c"},
            ),
            row=1,
            col=j,
        )
        fig.update_xaxes(type="category", row=1, col=j)
        if not any(_finite(r[name]) for r in rows):  # e.g. no bound for the empirical
            fig.update_yaxes(showticklabels=False, showgrid=False, row=1, col=j)
            fig.add_annotation(
                text="not defined<br>for this<br>denoiser",
                xref=f"x{j if j > 1 else ''} domain",
                yref=f"y{j if j > 1 else ''} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font={"color": "grey"},
            )
    if reference is not None:
        fig.add_hline(
            y=reference,
            line={"dash": "dot", "color": "grey"},
            row=1,
            col=SWEEP_METRICS.index("NN distance to train") + 1,
            annotation_text="held-out data",
            annotation_position="bottom right",
        )
    fig.update_layout(height=height, margin={"l": 40, "r": 20, "t": 70, "b": 60})
    return fig
