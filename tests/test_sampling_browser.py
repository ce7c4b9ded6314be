"""The Sampling, Compare and Conditioning pages in a real browser (Debian chromium on the real
server): run a sampling, see the live preview, the playback and the samples, download the GIF
and the settings JSON and decode them; run Compare and Conditioning. Screenshots go to
test-artifacts/sampling-*.png (look at them)."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image

from tests.browser import loaded_images, no_errors, wait_idle

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 3000}  # the app scrolls inside; tall = whole page


def test_sampling_run_playback_and_exports(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{streamlit_server}/sampling?size=32&steps=200&batch=16&basis=dct&order=scale")
    page.get_by_role("heading", name="Sampling").first.wait_for(state="visible")
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    # This run can end within one preview period, and the preview is removed once the results
    # are drawn, so it is not waited for here; the Stop test below sees it on a long run.
    page.get_by_role("heading", name="Trajectory").wait_for(state="visible", timeout=120_000)
    wait_idle(page)
    no_errors(page)
    charts = page.locator('[data-testid="stPlotlyChart"]')
    charts.nth(2).locator(".main-svg").first.wait_for(state="attached")
    assert loaded_images(page) >= 2  # playback frame and the samples
    assert page.get_by_text("step 200 of 200").count() >= 1
    # playback: the Frame slider half way back (PageDown = 10 %), with no resampling
    thumb = page.get_by_role("slider", name="Frame")
    thumb.focus()
    for _ in range(5):
        thumb.press("PageDown")
    page.get_by_text(re.compile(r"step 1?\d{1,2} of 200: x_t")).wait_for(
        state="visible", timeout=30_000
    )
    wait_idle(page)
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts_dir / "sampling-run.png"), full_page=True)

    with page.expect_download() as dl:
        page.get_by_role("button", name="Settings as JSON").click()
    doc = json.loads(open(dl.value.path(), encoding="utf-8").read())
    assert doc["format"] == "rgdiff-sampling"
    assert doc["settings"]["steps"] == "200" and doc["settings"]["basis"] == "dct"
    with page.expect_download() as dl:
        page.get_by_role("button", name="Trajectory as GIF").click()
    gif = Image.open(io.BytesIO(open(dl.value.path(), "rb").read()))
    durations = []
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    # 50 frames of the trajectory; Pillow merges identical neighbours (the last frames, once
    # every sample has settled on its training item) into one frame of their summed duration
    assert gif.n_frames <= 50 and sum(durations) == 50 * durations[0]
    no_errors(page)


def test_compare_and_conditioning_pages(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(
        f"{streamlit_server}/compare?size=16&steps=30&b_steps=30&batch=16&sweep=inf&sweep=1&sweep=0.1"
    )
    page.get_by_role("heading", name="Compare").first.wait_for(state="visible")
    wait_idle(page)
    page.get_by_role("button", name="Run A and B").click()
    page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Run the softness sweep").click()
    page.get_by_text("runs,").first.wait_for(state="visible", timeout=90_000)
    wait_idle(page)
    no_errors(page)
    assert loaded_images(page) >= 2
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts_dir / "sampling-compare.png"), full_page=True)

    page.goto(f"{streamlit_server}/conditioning?size=16&task=super_resolution&steps=40&cn=8")
    page.get_by_role("heading", name="Conditioning").first.wait_for(state="visible")
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("mean of 8 samples").wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    no_errors(page)
    assert loaded_images(page) >= 4  # input, known part, mean, samples
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts_dir / "sampling-conditioning.png"), full_page=True)


def test_conditioning_hole_drawn_with_the_mouse(streamlit_server, browser_page, artifacts_dir):
    """Inpainting with a hole drawn on the image: a box dragged over the middle of the chart
    selects those pixels, the known-part image shows them as the hole, and a run fills it."""
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(
        f"{streamlit_server}/conditioning?size=16&task=inpainting&mask=draw&basis=pixel"
        "&steps=20&cn=4"
    )
    page.get_by_role("heading", name="Conditioning").first.wait_for(state="visible")
    page.get_by_text("every pixel is known until you draw a hole").wait_for(
        state="visible", timeout=60_000
    )
    wait_idle(page)
    area = page.locator('[data-testid="stPlotlyChart"] .nsewdrag').first
    area.wait_for(state="attached")
    box = area.bounding_box()
    x0, y0 = box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"]
    x1, y1 = box["x"] + 0.7 * box["width"], box["y"] + 0.7 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10)
    page.mouse.up()
    known = page.get_by_text(re.compile(r"^known: \d+/256$"))
    known.wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    n_known = int(known.inner_text().split()[1].split("/")[0])
    assert 100 < n_known < 256 - 16, n_known  # a hole of roughly 6 x 6 pixels
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("mean of 4 samples").wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    no_errors(page)
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts_dir / "sampling-conditioning-drawn.png"), full_page=True)
