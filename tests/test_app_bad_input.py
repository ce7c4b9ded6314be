"""Bad input never breaks the app: each bad file gives a clear message on the page, the app keeps
running and the other settings stay as they were."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import app_errors, open_app_page
from PIL import Image

from ui import files, state

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"size": 16}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def gradient(mode: str, size: int = 40) -> Image.Image:
    ramp = np.linspace(0, 1, size * size).reshape(size, size)
    if mode == "RGBA":
        rgb = (np.stack([ramp, ramp.T, 1 - ramp, 0.5 + 0.5 * ramp], -1) * 255).astype(np.uint8)
        return Image.fromarray(rgb)
    if mode == "P":
        return (
            Image.fromarray((ramp * 255).astype(np.uint8))
            .convert("RGB")
            .convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        )
    if mode == "I;16":
        img = Image.fromarray((ramp * 65535).astype("<u2"))
        assert img.mode == "I;16", img.mode
        return img
    return Image.fromarray((ramp * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def bad_files() -> dict[str, tuple[str, bytes, str]]:
    good = png(gradient("L"))
    return {
        "not an image": ("notes.txt", b"these are notes, not pixels\n" * 20, "text/plain"),
        "corrupt PNG": ("broken.png", good[: len(good) // 2], "image/png"),
        "50 megapixels": ("huge.png", png(Image.new("L", (7072, 7072))), "image/png"),
    }


@pytest.fixture(scope="module")
def odd_modes() -> list[tuple[str, bytes, str]]:
    return [
        (f"{m.replace(';', '')}.png", png(gradient(m)), "image/png") for m in ("RGBA", "P", "I;16")
    ]


def errors(at) -> str:
    return " | ".join(e.value for e in at.error)


def uploader(at, key: str):
    return next(w for w in at.file_uploader if w.key == key)


def test_dataset_upload_bad_files_then_odd_modes(bad_files, odd_modes):
    at = open_app_page("basis", {"basis": "dct"}, SMALL | {"data": "upload"})
    assert not at.exception, app_errors(at)
    assert "no uploaded images" in errors(at)
    for what, file in bad_files.items():
        uploader(at, "data_upload").set_value([file])
        at.run()
        assert not at.exception, (what, app_errors(at))
        msg = errors(at)
        assert "Could not use the uploaded images" in msg and file[0] in msg, (what, msg)
        assert at.session_state["basis"] == "dct", "a bad upload must not reset other settings"
    expected = {
        "not an image": "not a recognised image",
        "corrupt PNG": "corrupt",
        "50 megapixels": "megapixel",
    }
    for what, file in bad_files.items():  # each message says what is wrong
        uploader(at, "data_upload").set_value([file])
        at.run()
        assert expected[what] in errors(at), (what, errors(at))
    # RGBA, palette and 16-bit images are accepted and used as the dataset.
    uploader(at, "data_upload").set_value(odd_modes)
    at.run()
    assert not at.exception, app_errors(at)
    assert not at.error, errors(at)
    assert len(at.get("plotly_chart")) >= 3
    assert at.session_state["basis"] == "dct"


def test_noising_own_image_bad_then_good(bad_files, odd_modes):
    at = open_app_page("noising", {"t": 0.4}, SMALL)
    n_charts = len(at.get("plotly_chart"))
    for what, file in bad_files.items():
        uploader(at, "noise_upload").set_value(file)
        at.run()
        assert not at.exception, (what, app_errors(at))
        assert f"Could not use **{file[0]}**" in errors(at), (what, errors(at))
        # The page falls back to the data item and shows everything.
        assert len(at.get("plotly_chart")) == n_charts
        assert at.session_state["t"] == 0.4
    for file in odd_modes:
        uploader(at, "noise_upload").set_value(file)
        at.run()
        assert not at.exception, (file[0], app_errors(at))
        assert not at.error, (file[0], errors(at))


MALFORMED = {
    "not JSON": b"{family: soft",
    "binary": bytes(range(256)),
    "JSON list": b"[1, 2, 3]",
    "bad setting": json.dumps({"settings": {"soft": "banana"}}).encode(),
    "unknown setting": json.dumps({"settings": {"colour": "red"}}).encode(),
    "bad schedule": json.dumps(
        {"schedule": {"family": "soft", "labels": ["a"], "softness": 1}}
    ).encode(),
    "no family": json.dumps({"schedule": {"gamma_min": 1}}).encode(),
}


def test_malformed_schedule_json_keeps_the_schedule():
    at = open_app_page("schedule", {"soft": 0.2, "clip": True}, SMALL)
    before = [m.value for m in at.metric]
    for what, raw in MALFORMED.items():
        uploader(at, "sched_file").set_value(("schedule.json", raw, "application/json"))
        at.run()
        assert not at.exception, (what, app_errors(at))
        assert "Could not load **schedule.json**" in errors(at), (what, errors(at))
        assert "current schedule is kept" in errors(at)
        assert at.session_state["soft"] == 0.2 and at.session_state["clip"] is True
        assert [m.value for m in at.metric] == before, what
        assert len(at.get("plotly_chart")) >= 4


def test_schedule_json_round_trip():
    """A file exported with non-default settings sets the controls of a fresh page; the file
    is strict JSON even with softness = inf, and its schedule spec rebuilds the schedule."""
    from rgdiff_core.bases import make_basis
    from rgdiff_core.priors import make_prior
    from rgdiff_core.schedules import order_labels, soft_conditioning_schedule

    basis = make_basis("pixel", (1, 16, 16))
    schedule = soft_conditioning_schedule(order_labels("column", basis), float("inf"))
    settings = {
        **state.PROCESS_DEFAULTS,
        "basis": "pixel",
        "order": "column",
        "soft": float("inf"),
        "clip": True,
        "gd": -5.0,
    }
    raw = files.schedule_json(
        settings, {"dataset": "digits", "size": 16}, basis, make_prior("white", basis), schedule
    ).encode()

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(raw, parse_constant=no_constants)
    assert doc["settings"]["soft"] == "inf"
    loaded = files.parse_schedule_file(json.dumps({"schedule": doc["schedule"]}).encode())
    assert loaded.schedule.spec()["softness"] == float("inf")

    at = open_app_page("schedule", None, SMALL)
    uploader(at, "sched_file").set_value(("mine.json", raw, "application/json"))
    at.run()
    assert not at.exception, app_errors(at)
    assert not at.error, errors(at)
    for key in ("basis", "order", "soft", "clip", "gd"):
        assert at.session_state[key] == settings[key], key
    # Loading the same file again later does not undo changes made since.
    at.select_slider(key="soft").set_value(0.5)
    at.run()
    assert at.session_state["soft"] == 0.5


def test_bare_schedule_spec_is_used_and_a_mismatch_is_explained():
    linear = json.dumps({"family": "linear", "gamma_min": -4, "gamma_max": 6}).encode()
    at = open_app_page("schedule", None, SMALL)
    uploader(at, "sched_file").set_value(("linear.json", linear, "application/json"))
    at.run()
    assert not at.exception, app_errors(at)
    assert any("Showing the schedule from **linear.json**" in i.value for i in at.info)
    four = json.dumps(
        {"schedule": {"family": "soft", "labels": [0, 1, 2, 3], "softness": 1.0}}
    ).encode()
    uploader(at, "sched_file").set_value(("four.json", four, "application/json"))
    at.run()
    assert not at.exception, app_errors(at)
    assert "has 4 components but the current basis has 256" in errors(at)
    assert len(at.get("plotly_chart")) >= 4  # the controls' schedule is shown instead


def test_upload_size_is_capped_in_config():
    text = (ROOT / ".streamlit" / "config.toml").read_text()
    server = text.split("[server]", 1)[1].split("\n[", 1)[0]
    cap = re.search(r"^maxUploadSize\s*=\s*(\d+)", server, re.MULTILINE)
    assert cap, "server.maxUploadSize is not set in .streamlit/config.toml"
    assert 1 <= int(cap.group(1)) <= 50
