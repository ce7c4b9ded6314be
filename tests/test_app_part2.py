"""AppTest of the Sampling, Compare and Conditioning pages: every page, control extremes, a
sweep, a cancel, exports that decode, settings that reload to the same samples, bad input
shown as messages (never a traceback). Small sizes (16 x 16, few steps) keep it fast."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from rgdiff_core import viz
from tests.conftest import APP, app_errors
from ui import denoiser_choice, exports, state
from ui.runs import MAX_STORED_BYTES, remember, stored_bytes

SIDEBAR = {"data": "digits", "size": 16}


@pytest.fixture(autouse=True)
def navigation_mode(monkeypatch):
    """Run every AppTest run through app.py's st.navigation, as a real server does after
    its first session. AppTest resets Streamlit's legacy pages/ flag on every run, which
    makes ui.sidebar.data_spec rerun the script, and a rerun drops button clicks."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", patched)


def open_page(page: str, query: dict | None = None, sidebar: dict | None = None) -> AppTest:
    """app.py showing pages/<page>.py, as if opened from a link with these settings."""
    side = {**SIDEBAR, **(sidebar or {})}
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params = state.query_params_all(side)
    at.run()
    at.query_params = state.query_params_all({**side, **(query or {})})
    at.switch_page(f"pages/{page}.py")
    at.run()
    assert not at.exception, app_errors(at)
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, app_errors(at)
    return at


def stored(at: AppTest):
    return list(at.session_state["_rgdiff_runs"].values())


def captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


# ---------------------------------------------------------------- Sampling


def test_sampling_run_playback_does_not_resample():
    at = open_page("sampling", {"steps": 20, "batch": 4})
    assert "Press **Run**" in texts(at.info)
    click(at, "run_button")
    run = stored(at)[-1]
    assert run.nfe == 21 and run.samples.shape == (4, 1, 16, 16) and not run.cancelled
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["NFE"] == "21" and metrics["device"] == "CPU"
    assert at.slider(key="frame").value == len(run.trajectory) - 1
    at.slider(key="frame").set_value(0).run()
    assert not at.exception, app_errors(at)
    assert stored(at)[-1] is run  # playback only: the stored run is reused
    assert any("x_t at t = 0.950" in c for c in captions(at))
    assert not any(c.startswith("live") for c in captions(at))  # the preview is gone


@pytest.mark.parametrize(
    "query",
    [
        {"steps": 10, "batch": 1, "soft": 0.01, "clip": True, "basis": "pixel", "order": "raster"},
        {"steps": 1000, "batch": 1, "soft": float("inf"), "sampler": "euler_maruyama"},
        {"steps": 10, "batch": 2, "family": "linear", "basis": "fourier", "sampler": "heun_ode"},
    ],
    ids=["softness-0.01", "1000-steps-inf", "scalar-schedule"],
)
def test_sampling_control_extremes(query):
    at = open_page("sampling", query)
    if query["steps"] == 10 and query.get("soft") == 0.01:
        assert "below the" in texts(at.warning)  # stiff schedule: steps warning
    click(at, "run_button")
    run = stored(at)[-1]
    assert run.steps_done == query["steps"] and torch.isfinite(run.samples).all()


@pytest.mark.parametrize(
    "steps, batch, message",
    [
        (0, 4, "too few"),
        (5000, 4, "at most 1000"),
        (20, 5_000_000, "largest batch is"),
    ],
)
def test_sampling_bad_input_gives_messages(steps, batch, message):
    at = open_page("sampling")
    at.number_input(key="steps").set_value(steps)
    at.number_input(key="batch").set_value(batch).run()
    assert not at.exception, app_errors(at)
    assert message in texts(at.error)
    assert "run_button" not in [b.key for b in at.button]  # nothing to run until fixed


def test_sampling_sweep_same_seed_side_by_side():
    at = open_page("sampling", {"mode": "sweep", "steps": 10, "batch": 2})
    click(at, "run_button")
    runs = stored(at)[-1]
    assert [r.meta["softness"] for r in runs] == [float("inf"), 3.0, 1.0, 0.3, 0.1]
    assert sum(c == "x_t" for c in captions(at)) == 5  # one column per softness
    gif = Image.open(io.BytesIO(exports.trajectory_gif(runs)))
    assert gif.n_frames == len(runs[0].trajectory) == 10


def test_sampling_scalar_sweep_is_refused_with_message():
    at = open_page("sampling", {"mode": "sweep", "family": "cosine"})
    assert "soft-conditioning" in texts(at.error)


@pytest.mark.parametrize("batch", [16, 4096], ids=["many-frames", "one-frame"])
def test_sampling_cancel_keeps_partial_trajectory(batch):
    at = open_page("sampling", {"steps": 1000, "batch": batch, "tlimit": 0.05})
    click(at, "run_button")
    run = stored(at)[-1]
    assert run.cancelled and 0 < run.steps_done < 1000
    assert "Unfinished (time limit" in texts(at.warning)
    assert len(run.trajectory) >= 1
    if len(run.trajectory) > 1:
        assert at.slider(key="frame").max == len(run.trajectory) - 1
    else:
        assert "One frame was recorded." in texts(at.caption)


def test_sampling_exports_decode_and_settings_reload_same_samples():
    query = {
        "steps": 12,
        "batch": 3,
        "basis": "dct",
        "soft": 0.3,
        "sampler": "heun_ode",
        "order": "scale",
        "clip": True,
    }
    at = open_page("sampling", query, sidebar={"seed": 7})
    click(at, "run_button")
    first = stored(at)[-1]
    gif = Image.open(io.BytesIO(exports.trajectory_gif([first])))
    assert gif.n_frames == 12
    png = Image.open(io.BytesIO(viz.encode_png(exports.grid_image(first.samples))))
    assert png.size[0] > 16
    labels = [d.label for d in at.get("download_button")]
    assert labels == ["Trajectory as GIF", "Samples as PNG", "Settings as JSON"]
    text = exports.settings_json(exports.settings_snapshot(at.session_state), {})
    doc = json.loads(text)
    assert doc["settings"]["seed"] == "7" and doc["settings"]["basis"] == "dct"

    fresh = open_page("sampling")  # defaults everywhere
    fresh.get("file_uploader")[0].set_value(("run.json", text.encode(), "application/json"))
    fresh.run()
    assert not fresh.exception, app_errors(fresh)
    assert "Settings loaded" in texts(fresh.success)
    for key, value in exports.parse_settings_file(text.encode()).items():
        assert fresh.session_state[key] == value, key
    click(fresh, "run_button")
    again = stored(fresh)[-1]
    torch.testing.assert_close(again.samples, first.samples)


def test_sampling_rejects_a_bad_settings_file():
    at = open_page("sampling")
    at.get("file_uploader")[0].set_value(("x.json", b'{"format": "other"}', "application/json"))
    at.run()
    assert not at.exception, app_errors(at)
    assert "Could not load" in texts(at.error)


def test_sampling_gaussian_fields_spectrum_check():
    """Too few ancestral steps at softness 0.1 fails the check; the check settings pass it."""
    query = {
        "den": "gaussian_true",
        "steps": 20,
        "batch": 64,
        "soft": 0.1,
        "clip": True,
        "basis": "fourier",
        "prior": "data",
        "gnauto": False,
    }
    at = open_page("sampling", query, sidebar={"data": "fields"})
    click(at, "run_button")
    assert "Does not match the true spectrum" in texts(at.error)
    click(at, "check_settings")
    assert at.session_state["sampler"] == "heun_ode" and at.session_state["gnauto"] is True
    click(at, "run_button")
    assert "Matches the true spectrum within Monte-Carlo error" in texts(at.success)


# ---------------------------------------------------------------- Compare


def test_compare_runs_both_and_sweeps_softness():
    at = open_page("compare", {"steps": 10, "b_steps": 10, "batch": 4})
    at.multiselect(key="sweep").set_value(["inf", "0.1"]).run()
    click(at, "run_compare")
    table = at.dataframe[0].value
    assert list(table.index) == ["A", "B", "held-out data (reference)"]
    assert table.loc["A", "NFE"] == 11 and table.loc["B", "device"] == "cpu"
    assert table.loc["A", "NN distance to train"] < 1e-3  # empirical: training copies
    # the held-out bound and its three terms: not shown for the empirical denoiser (it only
    # knows training items), the fitted Gaussian's with a small standard error
    assert pd.isna(table.loc["A", "bits/dim (held-out)"])  # shown as "—"
    gauss = open_page("compare", {"steps": 10, "b_steps": 10, "batch": 4, "den": "gaussian_fit"})
    click(gauss, "run_compare")
    g_table = gauss.dataframe[0].value
    for side in "AB":
        row = g_table.loc[side]
        total = row["L_T (nat)"] + row["diffusion (nat)"] + row["reconstruction (nat)"]
        # 32 images x 8 strata (held_out.N_LIKELIHOOD, N_T): s.e. 0.03-0.06 bits/dim
        assert 0 < row["± s.e."] < 0.1 and math.isfinite(total)
        assert row["L_T (nat)"] <= 0.1  # γ̃_n auto
        assert math.isfinite(row["bits/dim (held-out)"])
    click(at, "run_sweep")
    sweep = at.dataframe[-1].value
    assert list(sweep.index) == ["inf", "0.1"]
    assert (sweep["RAPSD log-error"] >= 0).all()
    assert sweep["bits/dim (held-out)"].isna().all()  # empirical: no bound, shown as "—"
    names = [d["name"] for d in json.loads(at.get("plotly_chart")[-1].proto.spec)["data"]]
    assert "bits/dim (held-out)" in names


def test_compare_bad_steps_message():
    at = open_page("compare", {"b_steps": 5})
    assert "**B:**" in texts(at.error) and "too few" in texts(at.error)


# ---------------------------------------------------------------- Conditioning


@pytest.mark.parametrize(
    "query",
    [
        {"task": "inpainting", "basis": "pixel", "mask": "centre_square"},
        {"task": "inpainting", "basis": "pixel", "mask": "random_50"},
        {"task": "super_resolution", "basis": "wavelet"},
        {"task": "low_pass", "basis": "dct", "k0": 2.0},
    ],
    ids=["inpaint-centre", "inpaint-random", "super-res", "low-pass"],
)
def test_conditioning_tasks(query):
    at = open_page("conditioning", {"steps": 10, "cn": 4, **query})
    click(at, "run_cond")
    run = stored(at)[-1]
    assert run.samples.shape == (4, 1, 16, 16) and torch.isfinite(run.samples).all()
    assert any("spread" in c.proto.spec for c in at.get("plotly_chart"))


def test_conditioning_drawn_hole_waits_for_a_drawing():
    """Mask 'draw' shows the image to draw on and says what to do; nothing runs until a hole
    is drawn (the drawing itself is a browser test: AppTest cannot drag on a chart)."""
    at = open_page("conditioning", {"task": "inpainting", "basis": "pixel", "mask": "draw"})
    assert not at.exception, app_errors(at)
    assert "every pixel is known until you draw a hole" in texts(at.info)
    assert [c for c in at.get("plotly_chart") if '"dragmode":"select"' in c.proto.spec]
    assert not [b for b in at.button if b.key == "run_cond"]


def test_conditioning_extension():
    at = open_page(
        "conditioning",
        {
            "task": "extension",
            "basis": "pixel",
            "order": "column",
            "extra": 3,
            "steps": 10,
            "cn": 2,
        },
    )
    click(at, "run_cond")
    out = stored(at)[-1]
    assert out.shape == (2, 1, 16, 19)


@pytest.mark.parametrize(
    "mask, message", [("all", "Every component is known"), ("none", "Nothing is known")]
)
def test_conditioning_degenerate_masks(mask, message):
    at = open_page(
        "conditioning", {"task": "inpainting", "basis": "pixel", "mask": mask, "steps": 10, "cn": 2}
    )
    assert message in texts(at.info)
    click(at, "run_cond")
    run = stored(at)[-1]
    if mask == "all":
        torch.testing.assert_close(run.samples, run.samples[:1].expand(2, -1, -1, -1))


def test_conditioning_wrong_basis_offers_switch():
    at = open_page("conditioning", {"task": "super_resolution", "basis": "pixel"})
    assert "needs the wavelet basis" in texts(at.warning)
    click(at, "use_basis")
    assert at.session_state["basis"] == "wavelet" and not at.warning


@pytest.mark.skipif(not denoiser_choice.network_files(), reason="no trained checkpoints shipped")
def test_sampling_with_a_trained_network():
    name = denoiser_choice.network_files()[0]
    at = open_page("sampling", {"den": f"network:{name}", "steps": 10, "batch": 2})
    assert "This network was trained for" in texts(at.error)
    click(at, "den_net_settings")
    assert not at.error
    trained = denoiser_choice.network_settings(f"network:{name}")
    assert at.slider(key="gn").value == trained["gn"]
    assert "outside what it has seen" not in texts(at.warning)
    at.slider(key="gn").set_value(trained["gn"] + 5).run()
    assert "outside what it has seen" in texts(at.warning)
    at.slider(key="gn").set_value(trained["gn"]).run()
    click(at, "run_button")
    run = stored(at)[-1]
    assert run.nfe == 11 and torch.isfinite(run.samples).all()


def test_interrupt_keeps_partial_run():
    """What Stop does in a real server (a script-control exception raised inside the
    sampler callback), here raised directly: the partial run is stored, the interrupt goes
    on, and the key is no longer marked running."""

    def script():
        import streamlit as st
        from streamlit.runtime.scriptrunner_utils.exceptions import StopException

        from ui import runs as s

        st.write("ready")
        if st.session_state.get("go"):

            def run():
                raise StopException()

            s.guarded("k", run, lambda: "partial")
        st.write("not reached" if st.session_state.get("go") else "idle")

    at = AppTest.from_function(script)
    at.run()
    at.session_state["go"] = True
    at.run()
    assert not at.exception, app_errors(at)
    assert at.session_state["_rgdiff_runs"]["k"] == "partial"
    assert "k" not in at.session_state["_rgdiff_running"]
    assert "not reached" not in texts(at.markdown)


def test_stored_runs_are_bounded_in_bytes():
    """A session keeps at most MAX_STORED runs and MAX_STORED_BYTES of them, newest first;
    the newest run is kept even when it alone is larger."""
    from collections import OrderedDict

    big = MAX_STORED_BYTES // 3 + 1024  # bytes: three of these do not fit
    store: OrderedDict = OrderedDict()
    for i in range(5):
        remember(i, [torch.zeros(big // 4)], store)
    assert list(store) == [3, 4]
    remember("huge", torch.zeros(MAX_STORED_BYTES // 8), store)  # half the bytes
    assert list(store) == [4, "huge"]
    assert sum(map(stored_bytes, store.values())) <= MAX_STORED_BYTES
    remember("huger", torch.zeros(MAX_STORED_BYTES // 2), store)  # 2x
    assert list(store) == ["huger"]


def test_sampling_shows_the_prior_term_and_what_to_change():
    """γ̃_n auto (the default) reaches the prior: L_T <= 0.1 nat in a caption, for every
    denoiser; γ̃_n = 3 with the white prior does not, and a warning says what to change."""

    def prior_captions(at):
        return [c.value for c in at.caption if c.value.startswith("Prior term L_T")]

    for den in ("empirical", "gaussian_fit"):
        at = open_page("sampling", {"den": den})
        (line,) = prior_captions(at)
        assert "(auto)" in line and float(line.split("= ")[1].split(" ")[0]) <= 0.1
        assert "does not reach its prior" not in texts(at.warning)
    at = open_page("sampling", {"gnauto": False, "gn": 3.0})
    assert not prior_captions(at)
    assert "does not reach its prior" in texts(at.warning) and "γ̃_n auto" in texts(at.warning)


def test_sampling_advises_the_steps_for_two_percent():
    """100 ancestral steps lose variance (the plug-in step): the page says how much and how
    many steps are within 2 %; the button sets them and the warning becomes a caption. The
    sweep shows the same check for every softness."""
    at = open_page("sampling", {"sampler": "ancestral"})
    warned = [w.value for w in at.warning if "Expected variance ratio" in w.value]
    assert len(warned) == 1 and "lose" in warned[0]
    (button,) = [b for b in at.button if b.key == "use_steps"]
    need = int(button.label.split()[1].replace(",", ""))
    assert 100 < need <= 1000
    click(at, "use_steps")
    assert at.number_input(key="steps").value == need
    assert not [w for w in at.warning if "Expected variance ratio" in w.value]
    assert any("within 2%" in c.value for c in at.caption)
    sweep = open_page("sampling", {"mode": "sweep", "steps": 50, "sampler": "ancestral"})
    assert "s = 0.1: " in texts(sweep.warning) and "s = inf: " in texts(sweep.warning)
