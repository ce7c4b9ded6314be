"""The controls' contract: every control has a key and a help text and is bound to the URL
(file uploaders and download buttons cannot be: files are not part of a link); the presets
and defaults are consistent with the options the controls offer."""

from __future__ import annotations

import pytest
from conftest import app_errors, open_app_page

from ui import state

BOUND = ("slider", "select_slider", "selectbox", "number_input", "checkbox", "toggle")
UNBOUND = ("file_uploader", "download_button")
# Start states that between them draw every control of a page.
STATES = {
    "basis": [{"prior": "power_law"}],
    "schedule": [{}, {"family": "linear"}],
    "noising": [{"ab": True, "prior": "power_law"}, {"family": "linear", "b_family": "vp"}],
}


@pytest.mark.parametrize("page", sorted(STATES))
def test_every_control_has_key_help_and_url_binding(page):
    seen = set()
    for start in STATES[page]:
        at = open_app_page(page, start, {"size": 16})
        assert not at.exception, app_errors(at)
        for kind in BOUND:
            for w in getattr(at, kind):
                assert w.key, f"{kind} {w.label!r} has no key"
                assert w.proto.help, f"{w.key} has no help text"
                assert w.proto.query_param_key == w.key, f"{w.key} is not bound to the URL"
                seen.add(w.key)
        for kind in UNBOUND:
            for w in at.get(kind):
                assert w.proto.help, f"{kind} {w.proto.label!r} has no help text"
    assert {"data", "size", "device", "seed"} <= seen


def test_defaults_and_presets_use_offered_options():
    for key in state.PROCESS_KEYS:
        for prefix in ("", "b_"):
            value = state.default(prefix + key)
            assert state.parse_setting(key, value) == value, (prefix + key, value)
    for preset in state.PRESETS:
        assert preset["page"] in state.PAGE_FILES
        for key, value in preset["settings"].items():
            assert state.parse_setting(key, value) == value, (preset["name"], key)
            # what the link carries parses back to the same value
            assert state.parse_setting(key, state.query_value(value)) == value


@pytest.mark.parametrize(
    "key,value",
    [("soft", "0.3x"), ("basis", "hexagonal"), ("gd", "-99"), ("clip", "maybe"), ("nope", 1)],
)
def test_parse_setting_rejects_with_a_message(key, value):
    with pytest.raises(ValueError, match=key):
        state.parse_setting(key, value)
