"""Faults while the app runs: a sampling run stopped part way, a browser closed mid-run, a
checkpoint removed or corrupted under the running app, out of memory (a raised
torch.OutOfMemoryError, and a tiny memory cap). Each time the page shows a message, never a
traceback, and a later run works."""

from __future__ import annotations

import shutil

import pytest
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from tests.browser import no_errors, wait_idle
from tests.conftest import app_errors, open_app_page
from tests.test_uploads import _tiny_checkpoint
from ui import run_controls
from ui.runs import LiveProgress

SIDE = {"size": 16}


@pytest.fixture(autouse=True)
def part2_pages(navigation_mode):
    """Runs go through app.py's navigation, as on a real server."""


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def runs(at) -> list:
    return (
        list(at.session_state["_rgdiff_runs"].values())
        if "_rgdiff_runs" in at.session_state
        else []
    )


def run_button(at):
    at.button(key="run_button").click().run()
    assert not at.exception, app_errors(at)
    return runs(at)[-1]


# ---------------------------------------------------------------- a run stopped part way


def test_run_stopped_part_way_keeps_the_partial_run_and_a_later_run_works(monkeypatch):
    """Stop (or any control touched during a run) makes Streamlit rerun the script, which
    interrupts the sampler at its next progress update: simulated by raising, at step 30 of
    200, the rerun Streamlit raises there, then running the page with the Stop click."""
    at = open_app_page("sampling", {"steps": 200, "batch": 4}, SIDE)
    orig = LiveProgress.__call__

    def interrupted(self, info):
        if info.step == 30:
            raise RerunException(None)
        return orig(self, info)

    monkeypatch.setattr(LiveProgress, "__call__", interrupted)
    at.button(key="run_button").click().run()
    assert not at.exception, app_errors(at)
    at.button(key="stop_button").click().run()  # the run the Stop click asked for
    assert not at.exception, app_errors(at)
    run = runs(at)[-1]
    assert run.cancelled and run.steps_done == 31 and torch.isfinite(run.samples).all()
    assert "Unfinished (stopped) at t = 0.84, after 31 of 200 steps" in texts(at.warning)
    monkeypatch.setattr(LiveProgress, "__call__", orig)
    again = run_button(at)
    assert not again.cancelled and again.steps_done == 200
    assert "Unfinished" not in texts(at.warning)


# ---------------------------------------------------------------- checkpoints under the app


def test_checkpoint_removed_while_the_app_runs(models_dir, tmp_path):
    ckpt = models_dir / "live-removed.pt"
    _tiny_checkpoint(ckpt)
    spare = tmp_path / "spare.pt"
    shutil.copy(ckpt, spare)
    query = {
        "den": "network:live-removed.pt",
        "steps": 10,
        "batch": 2,
        "basis": "dct",
        "prior": "data",
        "soft": 1.0,
    }
    at = open_app_page("sampling", query, SIDE)
    assert not at.error, texts(at.error)
    assert run_button(at).steps_done == 10
    ckpt.unlink()  # removed under the running app
    at.select_slider(key="soft").set_value(0.5).run()
    assert not at.exception, app_errors(at)
    # the file is gone from the list: the page falls back to another denoiser and works
    assert at.session_state["den"] != "network:live-removed.pt"
    assert run_button(at).steps_done == 10
    shutil.copy(spare, ckpt)  # back again: listed on the next run, chosen and used
    at.run()
    at.selectbox(key="den").set_value("network:live-removed.pt").run()
    assert not at.exception and not at.error, (app_errors(at), texts(at.error))
    assert run_button(at).steps_done == 10


def test_checkpoint_corrupted_while_the_app_runs(models_dir, tmp_path):
    ckpt = models_dir / "live-corrupted.pt"
    _tiny_checkpoint(ckpt)
    good = ckpt.read_bytes()
    query = {
        "den": "network:live-corrupted.pt",
        "steps": 10,
        "batch": 2,
        "basis": "dct",
        "prior": "data",
        "soft": 1.0,
    }
    at = open_app_page("sampling", query, SIDE)
    assert run_button(at).steps_done == 10
    ckpt.write_bytes(good[: len(good) // 3])  # a half-written copy over it
    at.select_slider(key="soft").set_value(2.0).run()  # a softness not loaded before
    assert not at.exception, app_errors(at)
    assert "not a valid rgdiff checkpoint" in texts(at.error)
    ckpt.write_bytes(good)
    at.select_slider(key="soft").set_value(3.0).run()
    assert not at.exception and not at.error, (app_errors(at), texts(at.error))
    assert run_button(at).steps_done == 10


# ---------------------------------------------------------------- out of memory


def oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


def test_out_of_memory_while_building_the_denoiser(monkeypatch):
    side = {**SIDE, "seed": 9731}  # a data spec no other test has cached a denoiser for
    with monkeypatch.context() as m:
        m.setattr(GaussianDenoiser, "fit", classmethod(lambda cls, *a, **k: oom()))
        at = open_app_page("sampling", {"den": "gaussian_fit", "steps": 10, "batch": 2}, side)
        assert not at.exception, app_errors(at)
        assert "out of GPU memory" in texts(at.error) and "smaller" in texts(at.error)
    at.run()
    assert not at.exception and not at.error, (app_errors(at), texts(at.error))


def test_tiny_memory_cap_refuses_the_batch_with_the_largest_that_fits(monkeypatch):
    monkeypatch.setattr(run_controls, "CPU_BUDGET", 2_000_000)  # 2 MB
    at = open_app_page("sampling", {"steps": 10, "batch": 16}, SIDE)
    assert not at.exception, app_errors(at)
    assert "the largest batch is" in texts(at.error)
    assert "run_button" not in [b.key for b in at.button]
    monkeypatch.setattr(run_controls, "CPU_BUDGET", 2 * 1024**3)
    at.run()
    assert run_button(at).steps_done == 10


def test_out_of_memory_during_a_run(monkeypatch):
    """Out of memory part way through a run: the page says which batch to try, keeps
    nothing of the run, frees the allocator's cache, and the next run works."""
    at = open_app_page("sampling", {"steps": 20, "batch": 4}, SIDE)
    calls = {"n": 0}
    forward = EmpiricalDenoiser.forward

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            oom()
        return forward(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(EmpiricalDenoiser, "forward", flaky)
        at.button(key="run_button").click().run()
        assert not at.exception, app_errors(at)
        assert "memory" in texts(at.error) + texts(at.warning)
    assert run_button(at).steps_done == 20


# ---------------------------------------------------------------- in a real browser

VIEWPORT = {"width": 1400, "height": 2400}
LONG_RUN = "size=32&steps=1000&batch=512&tlimit=120&basis=dct&order=scale"


@pytest.mark.browser
@pytest.mark.slow
def test_stop_button_mid_run_then_run_again(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{streamlit_server}/sampling?{LONG_RUN}")
    page.get_by_role("heading", name="Sampling").first.wait_for(state="visible")
    wait_idle(page, 120_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("live: x_t (top)").wait_for(state="visible", timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Unfinished (stopped)").wait_for(state="visible", timeout=60_000)
    wait_idle(page, 120_000)
    no_errors(page)
    assert page.get_by_role("heading", name="Trajectory").count() == 1  # the partial run is kept
    page.screenshot(path=str(artifacts_dir / "fault-stopped-run.png"))
    steps = page.locator('input[aria-label="Steps"]')
    steps.fill("20")
    steps.press("Enter")
    wait_idle(page, 120_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("step 20 of 20").first.wait_for(state="visible", timeout=60_000)
    wait_idle(page, 120_000)
    no_errors(page)
    assert page.get_by_text("Unfinished (stopped)").count() == 0


@pytest.mark.browser
@pytest.mark.slow
def test_browser_closed_mid_run_then_a_new_session_samples(streamlit_server, browser):
    import time
    import urllib.request

    first = browser.new_context(viewport=VIEWPORT)
    first.set_default_timeout(60_000)
    page = first.new_page()
    page.goto(f"{streamlit_server}/sampling?{LONG_RUN}")
    page.get_by_role("heading", name="Sampling").first.wait_for(state="visible")
    wait_idle(page, 120_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("live: x_t (top)").wait_for(state="visible")
    first.close()  # the browser goes away mid-run
    with urllib.request.urlopen(streamlit_server + "/_stcore/health", timeout=10) as r:
        assert r.status == 200
    second = browser.new_context(viewport=VIEWPORT)
    second.set_default_timeout(120_000)
    try:
        page = second.new_page()
        start = time.perf_counter()
        page.goto(f"{streamlit_server}/sampling?size=16&steps=20&batch=4&seed=3")
        page.get_by_role("heading", name="Sampling").first.wait_for(state="visible")
        wait_idle(page, 120_000)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("step 20 of 20").first.wait_for(state="visible")
        wait_idle(page, 120_000)
        no_errors(page)
        assert time.perf_counter() - start < 120
    finally:
        second.close()
