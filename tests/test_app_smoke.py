"""The app script runs headless under AppTest without raising."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app.py"


def test_home_renders_without_exception():
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [t.value for t in at.title]
    assert "rgdiff — unified diffusion explorer" in titles, titles
