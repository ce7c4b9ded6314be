"""A shipped Gaussian-residual model on the Sampling page: chosen, run, samples shown."""

from tests.test_app_part2 import click, open_page


def test_sampling_page_runs_a_gaussian_residual_network():
    at = open_page("sampling", {"den": "network:glyphs_haar.pt", "steps": 10, "batch": 2})
    assert not at.exception, at.exception
    click(at, "den_net_settings")  # from a link: the page offers the trained settings
    assert not at.error, [e.value for e in at.error]
    click(at, "run_button")
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert at.session_state["data"] == "glyphs" and at.session_state["basis"] == "wavelet"
    texts = " ".join(str(m.value) for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "Unfinished" not in texts
