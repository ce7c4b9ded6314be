"""Helpers of the real-browser tests (Playwright pages on the streamlit_server fixture)."""

from __future__ import annotations


def wait_idle(page, timeout_ms: int = 90_000) -> None:
    """Until the script run has finished (no 'running' status widget) and plotly has drawn."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(500)


def no_errors(page) -> None:
    """No exception box and no traceback text on the page (the boxes' text on failure)."""
    shown = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not shown, shown
    assert page.get_by_text("Traceback").count() == 0


def loaded_images(page) -> int:
    """How many st.image elements have finished loading a non-empty image."""
    return page.locator('[data-testid="stImage"] img').evaluate_all(
        "els => els.filter(e => e.complete && e.naturalWidth > 0).length"
    )
