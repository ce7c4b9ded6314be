"""The lecture view (pages/lecture.py, ui/lecture_view.py) under AppTest: Start runs every
softness from one seed, the player carries the t readout, every panel and its committed
groups, the GIF and PNG exports are at least 512 px wide; and viz.image_table, which draws
the exports."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from rgdiff_core import viz
from tests.conftest import app_errors, open_app_page
from ui import lecture_view as view

pytestmark = pytest.mark.usefixtures("navigation_mode")


def ok(at):
    assert not at.exception, app_errors(at)
    assert not at.error, [e.value for e in at.error]
    return at


def player_data(at) -> tuple[str, dict]:
    """The player's HTML and the frames and groups it plays."""
    (frame,) = at.get("iframe")
    html = frame.proto.srcdoc
    payload = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    return html, json.loads(payload.group(1).replace("<\\/", "</"))


def started(softness: list[str] | None = None, samples: int = 1):
    at = ok(open_app_page("lecture", {}, {}))
    if softness is not None:
        at.multiselect(key="lec_soft").set_value(softness)
    at.selectbox(key="lec_n").set_value(samples).run()
    assert "Press **Start**" in " ".join(m.value for m in ok(at).markdown)
    at.button(key="lecture_start").click().run()
    return ok(at)


def test_start_runs_every_softness_from_one_noise_and_plays_them():
    at = started()
    result = list(at.session_state["_rgdiff_runs"].values())[-1]
    assert [r.meta["softness"] for r in result] == [math.inf, 1.0, 0.1]
    assert len({r.seed for r in result}) == 1 and not any(r.cancelled for r in result)
    assert all(r.trajectory.x_t.shape[1:] == (1, 1, 16, 16) for r in result)
    html, data = player_data(at)
    assert 'id="t"' in html and "font-size:52px" in html  # the big t readout
    assert [p["title"] for p in data["panels"]] == ["s = ∞", "s = 1", "s = 0.1"]
    assert [p["role"] for p in data["panels"]] == ["diffusion", "soft order", "autoregressive"]
    n = len(data["t"])
    assert n >= 40 and data["t"][0] > 0.9 and data["t"][-1] == 0.0
    assert all(len(p["frames"]) == n and len(p["committed"]) == n for p in data["panels"])
    widths = {int(w) for w in re.findall(r'class="im" width="(\d+)"', html)}
    assert len(widths) == 1 and widths.pop() >= 256  # the default zoom: >= 256 px per image
    # committed groups: none at the start, all at t = 0; at s = 0.1 one after another, at
    # s = inf all at once
    for p in data["panels"]:
        counts = [sum(c) for c in p["committed"]]
        assert counts[0] == 0 and counts[-1] == len(p["groups"])
    steps = [sorted(set(sum(c) for c in p["committed"])) for p in data["panels"]]
    assert steps[0] == [0, len(data["panels"][0]["groups"])] and len(steps[2]) > 8
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download GIF", "Download PNG"]


def test_exports_are_large_enough_for_slides():
    at = started(["inf", "0.1"], samples=4)
    (_, spec, softnesses), result = list(at.session_state["_rgdiff_runs"].items())[-1]
    assert softnesses == (math.inf, 0.1) and result[0].trajectory.x_t.shape[1] == 4
    gif = Image.open(io.BytesIO(view.gif_bytes(result, spec, "x_t", 8)))
    assert gif.format == "GIF" and gif.width >= 512 and gif.n_frames == len(result[0].trajectory)
    png = Image.open(io.BytesIO(view.png_bytes(result, spec, "x̂₀")))
    assert png.format == "PNG" and png.width >= 512 and png.height >= 2 * 128


@pytest.mark.parametrize("preset", list(view.PRESETS))
def test_every_preset_runs_and_the_view_controls_do_not_resample(preset):
    at = ok(open_app_page("lecture", {}, {}))
    at.selectbox(key="lec_preset").set_value(preset)
    at.number_input(key="lec_steps").set_value(20).run()
    at.button(key="lecture_start").click().run()
    ok(at)
    store = at.session_state["_rgdiff_runs"]
    (_, spec, _), result = list(store.items())[-1]
    assert spec.steps == 20 and spec.process.basis.name == view.PRESETS[preset]["basis"]
    at.segmented_control(key="lec_show").set_value("x̂₀")
    at.select_slider(key="lec_width").set_value(512).run()
    ok(at)
    assert list(store.values())[-1] is result  # playback settings only: no new run
    html, data = player_data(at)
    assert "estimate" in html and all(len(p["frames"]) == len(data["t"]) for p in data["panels"])
    widths = {int(w) for w in re.findall(r'class="im" width="(\d+)"', html)}
    assert min(widths) >= 512


def test_one_softness_value_asks_for_two():
    at = open_app_page("lecture", {}, {})
    at.multiselect(key="lec_soft").set_value(["1"]).run()
    assert not at.exception, app_errors(at)
    assert "two or three softness values" in " ".join(e.value for e in at.error)


# ---------------------------------------------------------------- viz.image_table


def test_image_table_lays_out_labelled_cells():
    cells = [[np.full((8, 10), 40 * (i + j), np.uint8) for j in range(3)] for i in range(2)]
    out = viz.image_table(cells, ["a", "b", "c"], ["row 1", "row 2"], title="t = 0.50", gap=4)
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    plain = viz.image_table(cells, gap=4)
    assert plain.shape == (4 + 2 * 12, 4 + 3 * 14, 3)  # no labels: cells and gaps only
    np.testing.assert_array_equal(plain[4:12, 4:14, 0], cells[0][0])
    np.testing.assert_array_equal(plain[16:24, 32:42, 1], cells[1][2])
    assert out.shape[0] > plain.shape[0] and out.shape[1] > plain.shape[1]  # room for labels
    assert (out < 128).any(axis=2).sum() > (plain < 128).any(axis=2).sum()  # text is drawn


@pytest.mark.parametrize(
    "cells",
    [[], [[]], [[np.zeros((4, 4), np.uint8)], [np.zeros((4, 4), np.uint8)] * 2]],
    ids=["empty", "empty-row", "ragged"],
)
def test_image_table_refuses_a_bad_table(cells):
    with pytest.raises(ValueError, match="cells"):
        viz.image_table(cells)


def test_image_table_refuses_mixed_sizes():
    with pytest.raises(ValueError, match="same height"):
        viz.image_table([[np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)]])
    with pytest.raises(ValueError, match="uint8"):
        viz.image_table([[torch.zeros(4, 4).numpy()]])
