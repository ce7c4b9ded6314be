"""Every page under AppTest: defaults, every preset link, every control at its extremes, and the
URL round trip (settings in the URL reproduce the view)."""

from __future__ import annotations

import pytest
from conftest import app_errors, open_app_page

from ui import state

PAGES = ("basis", "schedule", "noising")
SMALL = {"size": 16}
# Charts each page draws with its defaults (one process on Forward noising).
MIN_CHARTS = {"basis": 3, "schedule": 4, "noising": 3}
TITLES = {"basis": "Basis & prior", "schedule": "Schedule designer", "noising": "Forward noising"}


def charts(at) -> int:
    return len(at.get("plotly_chart"))


def widget_value(at, key: str):
    return at.session_state[key] if key in at.session_state else None


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_with_defaults(page):
    at = open_app_page(page)
    assert not at.exception, app_errors(at)
    assert not at.error, [e.value for e in at.error]
    assert TITLES[page] in [t.value for t in at.title]
    assert charts(at) >= MIN_CHARTS[page]
    assert any("Running on: **CPU**" in c.value for c in at.caption), "device readout missing"


def test_home_lists_every_preset_with_links():
    at = open_app_page(None)
    assert not at.exception, app_errors(at)
    links = at.get("page_link")
    for preset in state.PRESETS:
        query = "&".join(f"{k}={v}" for k, v in state.query_params(preset["settings"]).items())
        hits = [ln for ln in links if ln.proto.query_string == query]
        assert hits, f"no link for preset {preset['name']!r} with query {query!r}"


@pytest.mark.parametrize("preset", state.PRESETS, ids=[p["name"] for p in state.PRESETS])
def test_preset_links_open_their_pages(preset):
    for page in ("schedule", "noising"):
        at = open_app_page(page, state.query_params(preset["settings"]), SMALL)
        assert not at.exception, app_errors(at)
        assert not at.error, [e.value for e in at.error]
        assert charts(at) >= MIN_CHARTS[page]
        for key, value in preset["settings"].items():
            shown = widget_value(at, key)
            if shown is not None:  # widgets of other families / bases are not drawn
                assert shown == value, (page, key, shown, value)


# ---------------------------------------------------------------- extreme values

# Start states that reveal the conditional controls (scalar family, power-law prior, A/B).
START_STATES = {
    "basis": [{}, {"prior": "power_law"}],
    "schedule": [
        {"gnauto": False},
        {},
        {"family": "linear", "prior": "power_law", "indiv": True},
        {"family": "vp"},
    ],
    "noising": [
        {"ab": True, "gnauto": False},
        {"family": "cosine", "b_family": "linear", "prior": "power_law"},
    ],
}


def _extremes(at, key: str):
    """(setter for the low end, setter for the high end, restore) of the widget `key`."""
    for kind in ("slider", "number_input"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            w = found[0]
            orig = w.value
            return (
                lambda w: w.set_value(w.min),
                lambda w: w.set_value(w.max),
                lambda w, orig=orig: w.set_value(orig),
                kind,
            )
    found = [w for w in at.select_slider if w.key == key]
    if found:
        orig = found[0].value
        return (
            lambda w: w.set_value(state.SOFTNESS[0]),
            lambda w: w.set_value(state.SOFTNESS[-1]),
            lambda w: w.set_value(orig),
            "select_slider",
        )
    found = [w for w in at.selectbox if w.key == key]
    if found:
        orig = found[0].index
        return (
            lambda w: w.select_index(0),
            lambda w: w.select_index(len(w.options) - 1),
            lambda w: w.select_index(orig),
            "selectbox",
        )
    for kind in ("checkbox", "toggle"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            orig = found[0].value
            return (
                lambda w: w.set_value(False),
                lambda w: w.set_value(True),
                lambda w, orig=orig: w.set_value(orig),
                kind,
            )
    return None


def _widget(at, kind: str, key: str):
    found = [w for w in getattr(at, kind) if w.key == key and not w.disabled]
    return found[0] if found else None


def _keys(at) -> list[str]:
    """Keys of the enabled controls (a user cannot move a disabled one, e.g. γ̃_n on auto)."""
    kinds = ("slider", "select_slider", "selectbox", "number_input", "checkbox", "toggle")
    return [w.key for kind in kinds for w in getattr(at, kind) if w.key and not w.disabled]


@pytest.mark.parametrize("page", PAGES)
def test_every_control_at_its_extremes(page):
    """Each control to its lowest and highest value (one at a time, then back): never an
    exception; invalid combinations may show st.error, and the page recovers afterwards."""
    done: set[str] = set()
    for start in START_STATES[page]:
        at = open_app_page(page, start, SMALL)
        assert not at.exception, app_errors(at)
        for key in _keys(at):
            if key in done:
                continue
            ends = _extremes(at, key)
            if ends is None:
                continue
            low, high, restore, kind = ends
            for setter in (low, high, restore):
                w = _widget(at, kind, key)
                if w is None:
                    break
                setter(w)
                at.run()
                assert not at.exception, (key, app_errors(at))
            done.add(key)
        assert charts(at) >= 1, f"{page}: nothing drawn after restoring every control"
    # Every control the page can draw was reached (upload widgets and buttons aside).
    expected = {"data", "size", "device", "seed", "basis", "wavelet", "levels", "prior", "exponent"}
    if page != "basis":
        expected |= {"family", "gmin", "gmax", "order", "soft", "gd", "gn", "gnauto", "clip"}
    if page == "schedule":
        expected |= {"bmin", "bmax"}
    assert expected <= done, sorted(expected - done)


# ---------------------------------------------------------------- URL round trip

ROUND_TRIP = {
    "basis": {"basis": "dct", "prior": "power_law", "exponent": 3.5, "bf": 5, "img": 7},
    "schedule": {
        "basis": "pixel",
        "order": "column",
        "soft": 0.2,
        "clip": True,
        "gd": -6.0,
        "gnauto": False,
        "gn": 4.5,
        "indiv": True,
    },
    "noising": {
        "basis": "fourier",
        "prior": "data",
        "order": "scale",
        "soft": 2.0,
        "clip": True,
        "t": 0.35,
        "img": 3,
        "ab": True,
        "b_basis": "pixel",
        "b_family": "cosine",
        "b_gmin": -12.0,
    },
}


def _set(at, key: str, value) -> None:
    for kind in ("slider", "number_input", "select_slider", "checkbox", "toggle", "selectbox"):
        w = _widget(at, kind, key)
        if w is not None:
            w.set_value(value)
            at.run()
            return
    raise AssertionError(f"no widget {key!r}")


def _view(at) -> list:
    """What the page shows: texts and chart data (figure JSON)."""
    texts = [m.value for m in (*at.markdown, *at.caption, *at.metric)]
    figs = [c.proto.spec for c in at.get("plotly_chart")]
    return [texts, figs, [i.proto.SerializeToString() for i in at.get("image")]]


@pytest.mark.parametrize("page", PAGES)
def test_url_round_trip(page):
    """Settings changed by hand, written to a URL the way Streamlit writes it, reopened in a
    fresh session: same widget values, same texts, same figures."""
    settings = ROUND_TRIP[page]
    by_hand = open_app_page(page, None, SMALL | {"seed": 5})
    for key, value in settings.items():
        _set(by_hand, key, value)
    assert not by_hand.exception, app_errors(by_hand)
    url = state.query_params(settings)
    assert set(url) == set(settings), "a setting equal to its default would drop out of the URL"
    from_link = open_app_page(page, settings, SMALL | {"seed": 5})
    assert not from_link.exception, app_errors(from_link)
    for key, value in settings.items():
        assert widget_value(from_link, key) == value, key
    # Streamlit keeps the bound, non-default values in the URL it reports.
    for key, text in url.items():
        assert from_link.query_params.get(key) == text, (key, from_link.query_params)
    assert _view(from_link)[0] == _view(by_hand)[0]
    assert _view(from_link)[1] == _view(by_hand)[1]


def test_play_moves_t_and_wraps_round():
    """Play advances t by PLAY_STEP on each run of the time view (a timer runs it while
    playing) and wraps from 1 back to 0; switched off, t stays where it is."""
    step = state.PLAY_STEP
    at = open_app_page("noising", {"t": 0.5, "play": True}, SMALL)
    assert not at.exception, app_errors(at)
    first = at.slider(key="t").value
    assert first == pytest.approx(0.5 + step)  # the page's own run moved it once
    at.run()
    assert at.slider(key="t").value == pytest.approx(first + step)
    at.slider(key="t").set_value(1.0).run()
    assert at.slider(key="t").value == 0.0
    at.toggle(key="play").set_value(False).run()
    stopped = at.slider(key="t").value
    at.run()
    assert at.slider(key="t").value == stopped
    assert not at.exception, app_errors(at)
