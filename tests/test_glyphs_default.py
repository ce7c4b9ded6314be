"""AppTest: glyphs are the app's default dataset, and the exact empirical denoiser uses the
first "Training items" of it (default state.RUN_DEFAULTS["items"]), so a default run costs
what 6 000 items cost, not 60 000; the user can pick any count up to the whole set."""

from __future__ import annotations

import pytest

from tests.conftest import open_app_page
from tests.test_app_polish import ok, texts
from ui import state

pytestmark = pytest.mark.usefixtures("navigation_mode")


def test_glyphs_are_the_default_and_the_empirical_denoiser_uses_the_first_items():
    at = ok(open_app_page("sampling", {"steps": 10, "batch": 2}))
    assert at.session_state["data"] == "glyphs" and at.session_state["den"] == "empirical"
    items = at.number_input(key="items")
    assert items.value == state.default("items") == 6000 and items.max == 60_000
    assert "Uses the first 6,000 of 60,000 training items." in texts(at.caption)
    at.button(key="run_button").click().run()
    ok(at)
    run = list(at.session_state["_rgdiff_runs"].values())[-1]
    assert run.samples.shape == (2, 1, 32, 32) and not run.cancelled
    # a different count builds another denoiser; the caption follows it
    at.number_input(key="items").set_value(100).run()
    ok(at)
    assert "Uses the first 100 of 60,000 training items." in texts(at.caption)
    at.button(key="run_button").click().run()
    ok(at)
    assert not at.error, texts(at.error)


def test_a_small_dataset_uses_all_its_items():
    at = ok(open_app_page("sampling", {"steps": 10, "batch": 2}, {"data": "digits", "size": 16}))
    items = at.number_input(key="items")
    assert items.value == items.max < 6000  # the default is capped at the dataset's size
    assert "Uses the first" not in texts(at.caption)
