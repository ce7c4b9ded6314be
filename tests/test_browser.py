"""The real server renders the home page in a real browser without an exception."""

import pytest

pytestmark = pytest.mark.browser

TITLE = "rgdiff — unified diffusion explorer"


def test_home_page_renders(streamlit_server, browser_page, artifacts_dir):
    page = browser_page
    page.goto(streamlit_server + "/")
    page.get_by_role("heading", name=TITLE).wait_for(state="visible")
    page.screenshot(path=str(artifacts_dir / "home.png"), full_page=True)

    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Traceback").count() == 0
