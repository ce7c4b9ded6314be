"""AppTest of issue 12's defaults and polish: a trained network brings its settings when it is
chosen (no red error first), Conditioning opens on a basis its default task can use, the
softness sweep says which end is diffusion and which way its metrics are better, the Home
text and the softness slider tell one story, and empty table cells read "—", never "None"."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tests.conftest import APP, app_errors, open_app_page
from ui import denoiser_choice, run_plots, state

SIDEBAR = {"data": "digits", "size": 16}
pytestmark = pytest.mark.usefixtures("navigation_mode")


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def ok(at):
    assert not at.exception, app_errors(at)
    return at


# ---------------------------------------------------------------- (a) a network's settings


@pytest.mark.skipif(not denoiser_choice.network_files(), reason="no trained checkpoints shipped")
@pytest.mark.parametrize("page", ["sampling", "compare"])
def test_choosing_a_network_applies_its_training_settings(page):
    name = denoiser_choice.network_files()[0]
    trained = denoiser_choice.network_settings(f"network:{name}")
    at = ok(open_app_page(page, {"steps": 10, "b_steps": 10, "batch": 2}, SIDEBAR))
    at.selectbox(key="den").set_value(f"network:{name}").run()
    ok(at)
    assert not at.error, texts(at.error)  # the settings came before the rerun
    prefixes = ("", "b_") if page == "compare" else ("",)
    for key, value in trained.items():
        for prefix in ("",) if key in state.SIDEBAR_DEFAULTS else prefixes:
            assert at.session_state[prefix + key] == value, (prefix + key, value)


# ---------------------------------------------------------------- (b) Conditioning's basis


def test_conditioning_opens_on_a_basis_its_task_can_use():
    at = ok(open_app_page("conditioning", {"steps": 10, "cn": 2}, SIDEBAR))
    assert at.session_state["task"] == "inpainting" and at.session_state["basis"] == "pixel"
    assert "needs the" not in texts(at.warning)
    assert at.button(key="run_cond")  # the page got as far as its Run button
    # the user's own choice afterwards is kept (and explained), not switched back
    at.selectbox(key="basis").set_value("dct").run()
    ok(at)
    assert at.session_state["basis"] == "dct" and "needs the pixel basis" in texts(at.warning)


def test_conditioning_link_with_a_basis_keeps_it():
    at = ok(open_app_page("conditioning", {"task": "inpainting", "basis": "wavelet"}, SIDEBAR))
    assert at.session_state["basis"] == "wavelet" and "needs the pixel basis" in texts(at.warning)


# ---------------------------------------------------------------- (c) sweep axis, (e) "None"


def display_texts(table) -> list[str]:
    """The cell texts the browser shows for an st.dataframe of a pandas Styler."""
    styler = table.proto.arrow_data.styler
    assert styler.display_values, "the table carries no display values"
    shown = pa.ipc.open_stream(styler.display_values).read_all().to_pandas()
    return [str(v) for v in shown.to_numpy().ravel()]


def test_compare_tables_and_sweep_axis_say_what_is_better():
    at = ok(open_app_page("compare", {"steps": 10, "b_steps": 10, "batch": 4}, SIDEBAR))
    at.multiselect(key="sweep").set_value(["0.1", "inf"]).run()
    at.button(key="run_compare").click().run()
    ok(at)
    at.button(key="run_sweep").click().run()
    ok(at)
    ab, sweep = at.dataframe[0], at.dataframe[-1]
    for table in (ab, sweep):
        assert table.proto.placeholder == "—"  # what the browser's grid shows for a gap
        shown = display_texts(table)
        assert "None" not in shown and "nan" not in shown
        assert "—" in shown  # the empirical denoiser's bits/dim (no bound on held-out images)
    assert "Lower is better for bits/dim" in texts(at.caption)
    fig = json.loads(at.get("plotly_chart")[-1].proto.spec)
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert sum("lower is better" in t for t in titles) == 3
    assert any("dotted line" in t for t in titles)
    assert any("∞ = diffusion" in t and "autoregressive" in t for t in titles)  # the x title
    assert fig["data"][0]["x"] == ["inf", "0.1"]  # diffusion on the left


def test_sweep_figure_orders_softness_from_diffusion():
    rows = [{"softness": s, **dict.fromkeys(run_plots.SWEEP_METRICS, 1.0)} for s in (0.1, 1.0)]
    rows.append({"softness": float("inf"), **dict.fromkeys(run_plots.SWEEP_METRICS, 1.0)})
    fig = run_plots.sweep_metrics_fig(rows)
    assert list(fig.data[0].x) == ["inf", "1", "0.1"]
    assert set(run_plots.SWEEP_BETTER) == set(run_plots.SWEEP_METRICS)


def test_sweep_figure_says_when_a_metric_is_not_defined():
    """The empirical denoiser has no held-out bound: its panel says so instead of showing an
    empty axis with made-up ticks; the other panels are unchanged."""
    bits = "bits/dim (held-out)"
    rows = [
        {"softness": s, **dict.fromkeys(run_plots.SWEEP_METRICS, 1.0), bits: float("nan")}
        for s in (float("inf"), 0.1)
    ]
    fig = run_plots.sweep_metrics_fig(rows)
    notes = [a for a in fig.layout.annotations if "not defined" in a.text]
    j = run_plots.SWEEP_METRICS.index(bits) + 1
    assert len(notes) == 1 and notes[0].xref == f"x{j if j > 1 else ''} domain"
    assert fig.layout[f"yaxis{j if j > 1 else ''}"].showticklabels is False
    rows[0][bits] = -4.5  # one finite point: the panel is drawn as usual
    fig = run_plots.sweep_metrics_fig(rows)
    assert not [a for a in fig.layout.annotations if "not defined" in a.text]


# ---------------------------------------------------------------- (d) one softness story


def test_home_and_slider_tell_one_softness_story():
    home = ok(open_app_page(None, sidebar=SIDEBAR))
    shown = texts(home.markdown)
    for line in state.SOFTNESS_STORY:
        assert line in shown
    assert "s = ∞" in state.SOFTNESS_STORY[0] and "together" in state.SOFTNESS_STORY[0]
    assert "standard diffusion" in state.SOFTNESS_STORY[1]  # docs/maths.md §2: s = 1
    assert "autoregressive" in state.SOFTNESS_STORY[2]
    at = ok(open_app_page("schedule", sidebar=SIDEBAR))
    help_text = at.select_slider(key="soft").help
    for line in state.SOFTNESS_STORY:
        assert line in help_text


def test_page_icon_is_local():
    """A :material/...: icon as the favicon is fetched from fonts.gstatic.com; the app sets
    its own (an emoji), so nothing is fetched at run time."""
    text = APP.read_text(encoding="utf-8")
    assert 'page_icon="' in text and 'page_icon=":material' not in text
