"""Plotly figures from plain arrays: layout and colours only, no maths beyond reshaping."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

SEQ = "Viridis"
DIVERGING = "RdBu_r"
MARGIN = {"l": 50, "r": 20, "t": 40, "b": 40}


def _layout(fig: go.Figure, title: str, height: int, **kw) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}}, height=height, margin=MARGIN, **kw
    )
    return fig


def colours(values: Sequence[float], scale: str = SEQ) -> list[str]:
    """One colour per value, spread over a colour scale by rank of value."""
    v = np.asarray(values, dtype=float)
    lo, hi = np.nanmin(v), np.nanmax(v)
    pos = np.zeros_like(v) if hi <= lo else (v - lo) / (hi - lo)
    return sample_colorscale(scale, list(np.clip(np.nan_to_num(pos), 0, 1)))


def image_fig(
    values: np.ndarray,
    title: str,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    colorscale: str = "gray",
    zmin=None,
    zmax=None,
    zmid=None,
    bands=(),
    colorbar_title: str = "",
    height: int = 320,
    x_title: str = "",
    y_title: str = "",
    showscale: bool = True,
) -> go.Figure:
    """A heatmap drawn like an image (row 0 at the top, square pixels); wavelet sub-band
    squares outlined when `bands` are given. The horizontal colour bar sits under the plot,
    at the figure's bottom edge when there is an x-axis title, so it never covers the title."""
    h, w = values.shape
    bar_at = {"y": -0.12, "yanchor": "top"}
    if x_title:
        bar_at = {"yref": "container", "y": 0.0, "yanchor": "bottom"}
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=x,
            y=y,
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            zmid=zmid,
            showscale=showscale,
            colorbar={
                "title": {"text": colorbar_title, "side": "right"},
                "thickness": 10,
                "orientation": "h",
                "len": 0.9,
                **bar_at,
            },
            hovertemplate="x %{x}, y %{y}: %{z:.3g}<extra></extra>",
        )
    )
    for r0, c0, size, name in bands:
        fig.add_shape(
            type="rect",
            x0=c0 - 0.5,
            x1=c0 + size - 0.5,
            y0=r0 - 0.5,
            y1=r0 + size - 0.5,
            line={"color": "white", "width": 1},
        )
        if size >= max(h, w) / 4:
            fig.add_annotation(
                x=c0 + size / 2 - 0.5,
                y=r0 + 0.5,
                text=name,
                showarrow=False,
                font={"color": "white", "size": 10},
                yanchor="top",
            )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", title=y_title)
    fig.update_xaxes(constrain="domain", title=x_title)
    bottom = 95 if x_title and showscale else 10
    fig = _layout(fig, title, height + bottom - 10)  # the bar's room comes on top of height
    fig.update_layout(margin={"l": 30, "r": 10, "t": 36, "b": bottom})
    return fig


def bars_fig(
    x: np.ndarray,
    y: np.ndarray,
    title: str,
    x_title: str = "",
    y_title: str = "",
    height: int = 320,
) -> go.Figure:
    fig = go.Figure(go.Bar(x=x, y=y, marker_color="#2b5f8c"))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, height)


def variance_fig(
    scale: np.ndarray,
    lam: np.ndarray,
    group: np.ndarray,
    names: list[str],
    x_title: str,
    log_x: bool = False,
    height: int = 360,
) -> go.Figure:
    """Per-component data variance against scale, one colour (and legend entry) per group."""
    fig = go.Figure()
    cols = colours(range(len(names)), "Turbo")
    for g, name in enumerate(names):
        sel = group == g
        fig.add_trace(
            go.Scattergl(
                x=scale[sel] + (1 if log_x else 0),
                y=lam[sel],
                mode="markers",
                name=name,
                marker={"color": cols[g], "size": 5, "opacity": 0.7},
                hovertemplate=f"{name}<br>scale %{{x:.3g}}<br>λ %{{y:.3g}}<extra></extra>",
            )
        )
    fig.update_yaxes(type="log", title="data variance λ_i")
    fig.update_xaxes(type="log" if log_x else "linear", title=x_title)
    return _layout(
        fig,
        "Data variance per component",
        height,
        legend={"font": {"size": 9}},
        showlegend=len(names) <= 40,
    )


def spectra_fig(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    styles: dict[str, dict] | None = None,
    height: int = 320,
) -> go.Figure:
    """RAPSD curves P(k) for k >= 1 on log-log axes."""
    fig = go.Figure()
    for name, (k, p) in curves.items():
        fig.add_trace(
            go.Scatter(
                x=k[1:],
                y=np.maximum(p[1:], 1e-12),
                mode="lines+markers",
                name=name,
                marker={"size": 4},
                line=(styles or {}).get(name, {}),
            )
        )
    k_max = max(float(k[-1]) for k, _ in curves.values())
    ticks = [v for v in (1, 2, 5, 10, 20, 50, 100) if v <= k_max]
    fig.update_xaxes(type="log", title="|k|", tickvals=ticks, range=[-0.05, np.log10(k_max) + 0.05])
    fig.update_yaxes(type="log", title="power P(k)", exponentformat="power")
    return _layout(fig, title, height, legend={"orientation": "h", "y": -0.25})


def curves_fig(
    t: np.ndarray,
    y: np.ndarray,
    names: list[str],
    colour_by: np.ndarray,
    title: str,
    y_title: str,
    colour_title: str,
    hline: float | None = None,
    height: int = 360,
) -> go.Figure:
    """Curves y (T, K) against t, coloured by `colour_by` (K,) with a colour bar."""
    fig = go.Figure()
    cols = colours(colour_by)
    for j, name in enumerate(names):
        fig.add_trace(
            go.Scatter(
                x=t,
                y=y[:, j],
                mode="lines",
                name=name,
                showlegend=False,
                line={"color": cols[j], "width": 1.5},
                hovertemplate=f"{name}<br>t %{{x:.2f}}: %{{y:.3g}}<extra></extra>",
            )
        )
    lo, hi = float(np.min(colour_by)), float(np.max(colour_by))
    # An invisible trace carries the colour bar for the label values.
    fig.add_trace(
        go.Scatter(
            x=[t[0]],
            y=[y[0, 0]],
            mode="markers",
            showlegend=False,
            hoverinfo="skip",
            marker={
                "size": 0.1,
                "color": [lo],
                "cmin": lo,
                "cmax": hi if hi > lo else lo + 1,
                "colorscale": SEQ,
                "showscale": True,
                "colorbar": {"title": {"text": colour_title}, "thickness": 12},
            },
        )
    )
    if hline is not None:
        fig.add_hline(y=hline, line={"dash": "dot", "color": "grey"})
    fig.update_xaxes(title="t (0 = data, 1 = noise)", range=[0, 1])
    fig.update_yaxes(title=y_title)
    return _layout(fig, title, height)


def order_map_fig(
    t: np.ndarray,
    z: np.ndarray,
    frontier: np.ndarray,
    first: np.ndarray,
    height: int = 380,
    clip: float = 12.0,
) -> go.Figure:
    """Generation-order map: rows = components sorted by label, colour = log SNR, with the
    SNR = 1 frontier."""
    fig = go.Figure(
        go.Heatmap(
            z=np.clip(z, -clip, clip),
            x=t,
            y=first,
            colorscale=DIVERGING,
            zmid=0,
            zmin=-clip,
            zmax=clip,
            colorbar={"title": {"text": "log SNR"}, "thickness": 12},
            hovertemplate="t %{x:.2f}, component #%{y}: log SNR %{z:.2f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=frontier, y=first, mode="lines", name="SNR = 1", line={"color": "black", "width": 2}
        )
    )
    fig.update_yaxes(autorange="reversed", title="component rank (first generated at top)")
    fig.update_xaxes(title="t (0 = data, 1 = noise)", range=[0, 1])
    return _layout(fig, "Generation order", height, legend={"orientation": "h", "y": -0.2})


def plane_fig(
    xa: np.ndarray,
    yb: np.ndarray,
    t: np.ndarray,
    name_a: str,
    name_b: str,
    extra: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    height: int = 380,
) -> go.Figure:
    """Two-component log-SNR path, coloured by t; the diagonal is standard diffusion."""
    lo = float(min(np.min(xa), np.min(yb)))
    hi = float(max(np.max(xa), np.max(yb)))
    fig = go.Figure()
    for name, (ex, ey) in (extra or {}).items():
        fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", name=name, line={"color": "#bbbbbb"}))
    fig.add_trace(
        go.Scatter(
            x=xa,
            y=yb,
            mode="lines+markers",
            name="this schedule",
            line={"color": "#2b5f8c"},
            marker={
                "size": 5,
                "color": t,
                "colorscale": SEQ,
                "showscale": True,
                "colorbar": {"title": {"text": "t"}, "thickness": 12},
            },
            hovertemplate="t %{marker.color:.2f}<br>A %{x:.2f}, B %{y:.2f}<extra></extra>",
        )
    )
    # Drawn last, so it stays visible where the schedule runs along it.
    fig.add_trace(
        go.Scatter(
            x=[lo, hi],
            y=[lo, hi],
            mode="lines",
            name="standard diffusion",
            line={"dash": "dash", "color": "#c0392b", "width": 1.5},
        )
    )
    fig.update_xaxes(title=f"log SNR − log λ: {name_a}")
    fig.update_yaxes(title=f"log SNR − log λ: {name_b}", scaleanchor="x")
    return _layout(
        fig, "Two-component log-SNR path", height, legend={"orientation": "h", "y": -0.25}
    )


def snr_bars_fig(
    names: list[str], log10_snr: np.ndarray, title: str, height: int = 300
) -> go.Figure:
    """Per-group log10 SNR with the SNR = 1 line; above in blue, below in red."""
    above = log10_snr > 0
    fig = go.Figure(
        go.Bar(
            x=names,
            y=log10_snr,
            marker_color=np.where(above, "#2b5f8c", "#c0392b"),
            hovertemplate="%{x}: log10 SNR %{y:.2f}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    fig.update_yaxes(title="log10 SNR (group mean)")
    return _layout(fig, title, height, xaxis={"tickangle": -45, "tickfont": {"size": 9}})


def mask_draw_fig(image: np.ndarray, height: int = 340) -> go.Figure:
    """The image (H, W) in [-1, 1] as one square marker per pixel, for drawing a hole with
    plotly's box or lasso selection (point index = row * W + col; selected pixels turn red).
    The figure depends on the image only, so the selection survives reruns."""
    h, w = image.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    fig = go.Figure(
        go.Scatter(
            x=cols,
            y=rows,
            mode="markers",
            marker={
                "symbol": "square",
                "size": max(2.0, (height - 50) / h),
                "color": image.reshape(-1),
                "colorscale": "gray",
                "cmin": -1.0,
                "cmax": 1.0,
                "line": {"width": 0},
            },
            selected={"marker": {"color": "#d62728", "opacity": 1.0}},
            unselected={"marker": {"opacity": 1.0}},
            hovertemplate="row %{y}, col %{x}<extra></extra>",
        )
    )
    fig.update_xaxes(range=[-0.5, w - 0.5], showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(
        range=[h - 0.5, -0.5], showgrid=False, zeroline=False, scaleanchor="x", constrain="domain"
    )
    return _layout(
        fig,
        "",
        height,
        dragmode="select",
        showlegend=False,
        plot_bgcolor="white",
    ).update_layout(margin={"l": 30, "r": 10, "t": 10, "b": 30})
