"""Every page in a real browser (Debian chromium on the real server): charts and images render,
no exception; screenshots go to test-artifacts/ (look at them). Also: a preset link from the
home page opens its page with its settings, and a control change lands in the URL, which
reproduces the view in a fresh session."""

from __future__ import annotations

import re

import pytest

from tests.browser import wait_idle
from ui import state

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1400, "height": 2400}  # the app scrolls inside; tall = whole page
# (url path, title, charts at least, images at least)
PAGES = [
    ("basis_prior", "Basis & prior", 3, 4),
    ("schedule_designer", "Schedule designer", 4, 0),
    ("forward_noising?ab=true", "Forward noising", 6, 4),
]


def check_page(page, title: str, charts: int, images: int) -> None:
    page.get_by_role("heading", name=title).first.wait_for(state="visible")
    wait_idle(page)
    if charts:  # each chart drawn by plotly (its svg is there)
        page.locator('[data-testid="stPlotlyChart"]').nth(charts - 1).locator(
            ".main-svg"
        ).first.wait_for(state="attached")
        wait_idle(page)
    drawn = page.locator('[data-testid="stPlotlyChart"]').evaluate_all(
        "els => els.filter(e => e.querySelector('.main-svg')).length"
    )
    assert drawn >= charts
    imgs = page.locator('[data-testid="stImage"] img')
    if images:
        imgs.nth(images - 1).wait_for(state="visible")
        loaded = imgs.evaluate_all(
            "els => els.filter(e => e.complete && e.naturalWidth > 0).length"
        )
        assert loaded >= images
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Traceback").count() == 0
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_text("Running on: CPU").count() == 1  # the shared sidebar is there


def test_every_page_renders(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(streamlit_server + "/")
    page.get_by_role("heading", name="Presets").wait_for(state="visible")
    wait_idle(page)
    # every preset card holds its page links once the run has finished drawing
    links = page.locator('[data-testid="stPageLink"]')
    links.nth(2 * len(state.PRESETS) - 1).wait_for(state="visible")
    assert links.count() >= 2 * len(state.PRESETS)
    page.screenshot(path=str(artifacts_dir / "page-home.png"))
    for path, title, charts, images in PAGES:
        page.goto(f"{streamlit_server}/{path}")
        check_page(page, title, charts, images)
        name = path.split("?")[0]
        page.screenshot(path=str(artifacts_dir / f"page-{name}.png"))


def test_preset_link_and_url_round_trip(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    preset = next(p for p in state.PRESETS if p["name"] == "Wavelet cascade")
    page.goto(streamlit_server + "/")
    query = "&".join(f"{k}={v}" for k, v in state.query_params(preset["settings"]).items())
    page.locator(f'[data-testid="stPageLink"] a[href="forward_noising?{query}"]').click()
    check_page(page, "Forward noising", 3, 2)
    for key, value in state.query_params(preset["settings"]).items():
        assert f"{key}={value}" in page.url, (key, page.url)
    assert page.get_by_text("soft-conditioning (scale, s = 0.05, clip)").count() >= 1
    page.screenshot(path=str(artifacts_dir / "preset-wavelet-cascade.png"))

    # Move the time slider with the keyboard: the URL follows, and a fresh session opened
    # from that URL shows the same time.
    page.locator('input[type=range][aria-label="t"]').first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => /[?&]t=0\\.51/.test(location.search)")
    wait_idle(page)
    shared = page.url
    fresh = page.context.browser.new_page(viewport=VIEWPORT)
    try:
        fresh.goto(shared)
        check_page(fresh, "Forward noising", 3, 2)
        assert fresh.get_by_text("x_t at t = 0.51").count() == 1
        assert fresh.get_by_text("soft-conditioning (scale, s = 0.05, clip)").count() >= 1
    finally:
        fresh.close()


def test_play_animates_every_view(streamlit_server, browser_page):
    """▶ Play on Forward noising moves t by itself (a fragment timer): the x_t caption and the
    slider change without any click, and switching it off stops them."""
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(f"{streamlit_server}/forward_noising?size=16&t=0.1&play=true")
    page.get_by_role("heading", name="Forward noising").first.wait_for(state="visible")
    caption = page.get_by_text(re.compile(r"^x_t at t = 0\.\d\d$")).first
    caption.wait_for(state="visible", timeout=60_000)
    seen = {caption.inner_text()}
    for _ in range(40):  # a few timer periods
        page.wait_for_timeout(250)
        seen.add(caption.inner_text())
        if len(seen) >= 3:
            break
    assert len(seen) >= 3, seen
    page.get_by_text("▶ Play").click()
    page.wait_for_timeout(1500)
    wait_idle(page)
    still = caption.inner_text()
    page.wait_for_timeout(1500)
    assert caption.inner_text() == still
    assert page.locator('[data-testid="stException"]').count() == 0


def test_custom_order_from_a_labels_file(streamlit_server, browser_page, artifacts_dir, tmp_path):
    """Order 'custom' with a labels file chosen in the browser: centre-out generation of
    pixels; the generation-order map and the curves are drawn, no error is left."""
    import numpy as np

    from ui import files

    row, col = np.divmod(np.arange(16 * 16), 16)
    path = tmp_path / "centre-out.csv"
    path.write_text(files.labels_csv(np.hypot(row - 7.5, col - 7.5), "centre out"))
    page = browser_page
    page.set_viewport_size(VIEWPORT)
    page.goto(
        f"{streamlit_server}/schedule_designer?size=16&basis=pixel&order=custom&soft=0.1&clip=true"
    )
    page.get_by_role("heading", name="Schedule designer").first.wait_for(state="visible")
    page.get_by_text("needs a labels file").wait_for(state="visible", timeout=60_000)
    wait_idle(page)
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Labels file")
    uploader.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("Labels from centre-out.csv").wait_for(state="visible", timeout=60_000)
    check_page(page, "Schedule designer", 4, 0)
    assert page.get_by_text("needs a labels file").count() == 0
    page.mouse.move(0, 0)
    page.screenshot(path=str(artifacts_dir / "page-schedule_designer-custom.png"))
