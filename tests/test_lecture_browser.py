"""The lecture view in a real browser (Debian chromium on the real server) at a projector's
1280 x 720: Start runs every softness from one noise and the player plays them together (its
t readout moves, every panel shows an image at least 256 px wide), the GIF and PNG downloads
are at least 512 px wide, and nothing is fetched from outside the server. Screenshot:
test-artifacts/lecture_1280x720.png, exports test-artifacts/lecture.gif and .png (look)."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.browser import no_errors, wait_idle

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 720}


def player_frame(page):
    """The player's document (it lives in an iframe)."""
    page.locator("iframe").first.wait_for(state="attached", timeout=120_000)
    for _ in range(200):
        for frame in page.frames:
            if frame != page.main_frame and frame.query_selector("#t"):
                return frame
        page.wait_for_timeout(100)
    raise AssertionError("the lecture player did not appear")


def test_lecture_view_starts_plays_and_exports(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    outside = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith((streamlit_server, "data:", "blob:", "about:"))
            else None
        ),
    )
    page.set_viewport_size(VIEWPORT)
    page.set_default_timeout(120_000)  # a fresh server's first page on a busy 2-core machine
    page.goto(f"{streamlit_server}/lecture")
    page.get_by_role("heading", name="Lecture view").first.wait_for(
        state="visible", timeout=120_000
    )
    wait_idle(page)
    page.get_by_role("button", name="Start").click()
    frame = player_frame(page)
    wait_idle(page)
    no_errors(page)
    readout = frame.locator("#t")
    first = readout.inner_text()
    assert re.fullmatch(r"t = [01]\.\d\d", first), first
    # playback: the readout and the frame index move on by themselves
    frame.wait_for_function("() => Number(document.body.dataset.frame) >= 8", timeout=30_000)
    assert readout.inner_text() != "t = 1.00"
    roles = frame.locator(".role").all_inner_texts()
    assert roles == ["diffusion", "soft order", "autoregressive"]
    widths = frame.locator(".im").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert len(widths) == 3 and min(widths) >= 256, widths
    assert frame.locator(".chip.on").count() >= 1  # some groups already committed
    page.mouse.move(1270, 710)  # no tooltip over the view
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "lecture_1280x720.png"))

    for name, kind in (("Download GIF", "GIF"), ("Download PNG", "PNG")):
        with page.expect_download() as dl:
            page.get_by_role("button", name=name).click()
        data = open(dl.value.path(), "rb").read()
        (artifacts_dir / f"lecture.{kind.lower()}").write_bytes(data)
        img = Image.open(io.BytesIO(data))
        assert img.format == kind and img.width >= 512, (kind, img.size)
        if kind == "GIF":
            assert img.n_frames >= 40
    no_errors(page)
    assert not outside, outside
