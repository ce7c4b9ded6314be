"""The custom order (docs/maths.md §2: an uploaded label array): reading labels files, refusing bad
ones with a message, the labels reaching the schedule, staying across pages, and travelling in
the schedule and sampling settings files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from conftest import app_errors, open_app_page

from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ScheduleSpec
from ui import cache, custom_labels, exports, files, state

SIZE = 16
D = SIZE * SIZE
ROW, COL = np.divmod(np.arange(D), SIZE)
CENTRE_OUT = np.hypot(ROW - 7.5, COL - 7.5)  # pixel basis: generated from the centre outwards


def _npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


# ---------------------------------------------------------------- reading files


@pytest.mark.parametrize(
    "name,raw",
    [
        ("a.csv", ",".join(map(str, CENTRE_OUT)).encode()),
        ("a.txt", "\n".join(map(str, CENTRE_OUT)).encode()),
        ("a.txt", ("# header\n" + " ".join(map(str, CENTRE_OUT)) + "  # end\n").encode()),
        ("a.csv", ";".join(map(str, CENTRE_OUT)).encode("utf-8-sig")),
        ("a.json", json.dumps(CENTRE_OUT.tolist()).encode()),
        ("a.json", json.dumps({"labels": CENTRE_OUT.reshape(SIZE, SIZE).tolist()}).encode()),
        ("a.npy", _npy(CENTRE_OUT)),
        ("a.npy", _npy(CENTRE_OUT.reshape(SIZE, SIZE).astype(np.float32))),
        ("labels", _npy(CENTRE_OUT)),  # recognised by its magic bytes
    ],
)
def test_labels_files_in_every_format_read_the_same(name, raw):
    got = files.parse_labels(raw, name, D)
    assert got.dtype == np.float64 and got.shape == (D,)
    np.testing.assert_allclose(got, CENTRE_OUT, rtol=1e-6)


def test_labels_csv_reads_back_exactly():
    text = files.labels_csv(CENTRE_OUT, "test")
    assert text.startswith("# rgdiff labels: test")
    np.testing.assert_array_equal(files.parse_labels(text.encode(), "x.csv", D), CENTRE_OUT)


@pytest.mark.parametrize(
    "name,raw,message",
    [
        ("a.csv", b"1,2,3", "holds 3 numbers, but the basis has 256"),
        ("a.csv", b"1,2,x\n", "line 1: 'x' is not a number"),
        ("a.csv", ("1\n" * 255 + "nan\n").encode(), "number 256 is nan"),
        ("a.csv", ("1e400 " * D).encode(), "must be finite"),
        ("a.csv", b"", "no numbers"),
        ("a.csv", b"\xff\xfe\x00\x81", "neither text"),
        ("a.json", b"[1, 2", "not valid JSON"),
        ("a.json", b'{"other": [1]}', "under 'labels'"),
        ("a.json", b"[[1, 2], [3]]", "regular array"),
        ("a.json", json.dumps(["a"] * D).encode(), "real numbers"),
        ("a.json", json.dumps([True] * D).encode(), "real numbers"),
        ("a.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("a.npy", _npy(CENTRE_OUT)[:60], "not a readable .npy file"),
        ("a.npy", _npy(CENTRE_OUT)[:200], "not a readable .npy file"),
        ("a.npy", _npy(CENTRE_OUT.astype(np.complex64)), "real numbers"),
        ("a.csv", b"1 " * 1_100_000, "at most 2 MB"),
    ],
)
def test_bad_labels_files_are_refused_with_a_message(name, raw, message):
    with pytest.raises(ValueError, match=message):
        files.parse_labels(raw, name, D)


class _Hostile:
    def __reduce__(self):
        return (open, ("/tmp/rgdiff-labels-pwned", "w"))


def test_a_pickle_in_a_npy_file_is_never_executed(tmp_path):
    marker = "/tmp/rgdiff-labels-pwned"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    raw = _npy(np.array([_Hostile()] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        files.parse_labels(raw, "evil.npy", 4)
    assert not os.path.exists(marker)


# ---------------------------------------------------------------- in the app


def _labels_uploader(at):
    return next(w for w in at.get("file_uploader") if w.proto.label.startswith("Labels file"))


def _custom_schedule_page(**query):
    at = open_app_page(
        "schedule",
        {"order": "custom", "basis": "pixel", "soft": 0.1, "clip": True, **query},
        {"size": SIZE},
    )
    assert not at.exception, app_errors(at)
    return at


def test_schedule_designer_custom_order_from_an_uploaded_file():
    at = _custom_schedule_page()
    assert any("needs a labels file: load 256 numbers" in e.value for e in at.error)
    _labels_uploader(at).set_value(("centre.csv", files.labels_csv(CENTRE_OUT, "t").encode(), ""))
    at.run()
    assert not at.exception, app_errors(at)
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) >= 4
    assert any("Labels from **centre.csv**: 256 numbers" in c.value for c in at.caption)
    # the schedule uses exactly these labels: the centre pixel first, the corners last
    digest, _ = at.session_state[custom_labels.labels_slot("")]
    spec = ScheduleSpec(order="custom", softness=0.1, clip=True, labels=digest)
    data = DataSpec(dataset="digits", size=SIZE)
    info = cache.schedule(data, BasisSpec(name="pixel"), PriorSpec(), spec)
    np.testing.assert_array_equal(info.labels, CENTRE_OUT)
    gamma = info.schedule.gamma(torch.tensor([0.5])).squeeze(0).double().numpy()
    log_snr = np.log(info.v) - gamma  # true log-SNR of each pixel half way
    assert log_snr[int(np.argmin(CENTRE_OUT))] > 0 > log_snr[int(np.argmax(CENTRE_OUT))]
    assert "Labels as CSV" in [d.label for d in at.get("download_button")]


def test_a_bad_labels_file_keeps_the_labels_loaded_before():
    at = _custom_schedule_page()
    _labels_uploader(at).set_value(("good.csv", files.labels_csv(CENTRE_OUT, "t").encode(), ""))
    at.run()
    held = at.session_state[custom_labels.labels_slot("")]
    _labels_uploader(at).set_value(("bad.csv", b"1,2,3", "text/csv"))
    at.run()
    assert not at.exception, app_errors(at)
    assert any("Could not use **bad.csv**" in e.value and "holds 3" in e.value for e in at.error)
    assert at.session_state[custom_labels.labels_slot("")] == held
    assert len(at.get("plotly_chart")) >= 4  # the page still shows the good labels


def test_labels_of_another_size_say_what_to_change():
    at = _custom_schedule_page()
    _labels_uploader(at).set_value(("good.csv", files.labels_csv(CENTRE_OUT, "t").encode(), ""))
    at.run()
    next(w for w in at.selectbox if w.key == "size").set_value(32)
    at.run()
    assert not at.exception, app_errors(at)
    assert any("hold 256 numbers, but the basis has 1024" in e.value for e in at.error)


def test_custom_labels_stay_when_the_user_moves_to_another_page():
    at = _custom_schedule_page()
    _labels_uploader(at).set_value(("good.csv", files.labels_csv(CENTRE_OUT, "t").encode(), ""))
    at.run()
    at.switch_page(state.PAGE_FILES["sampling"])
    at.run()
    assert not at.exception, app_errors(at)
    assert at.session_state["order"] == "custom"
    assert not at.error, [e.value for e in at.error]
    assert any("Labels from **good.csv**" in c.value for c in at.caption)


def test_sampling_with_custom_labels(navigation_mode):
    query = {"order": "custom", "basis": "pixel", "soft": 0.1, "clip": True, "steps": 20}
    at = open_app_page("sampling", {**query, "batch": 2}, {"size": SIZE})
    assert any("needs a labels file" in e.value for e in at.error)
    _labels_uploader(at).set_value(("c.json", json.dumps(CENTRE_OUT.tolist()).encode(), ""))
    at.run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="run_button").click().run()
    assert not at.exception, app_errors(at)
    runs = list(at.session_state["_rgdiff_runs"].values())
    assert runs and runs[-1].samples.shape == (2, 1, SIZE, SIZE)
    assert torch.isfinite(runs[-1].samples).all()


# ---------------------------------------------------------------- settings files


def test_sampling_settings_file_carries_the_custom_labels():
    settings = {"order": "custom", "basis": "pixel", "size": "16"}
    doc = json.loads(exports.settings_json(settings, {}, labels=CENTRE_OUT))
    assert len(doc["labels"]) == D
    values = exports.parse_settings_file(json.dumps(doc).encode())
    np.testing.assert_array_equal(values[exports.LABELS_KEY], CENTRE_OUT)
    # no labels written for another order, and bad labels are refused
    other = json.loads(exports.settings_json({"order": "scale"}, {}, labels=CENTRE_OUT))
    assert "labels" not in other
    doc["labels"] = ["x"]
    with pytest.raises(ValueError, match="labels: labels must be real numbers"):
        exports.parse_settings_file(json.dumps(doc).encode())


def test_schedule_file_with_custom_settings_carries_its_labels():
    from rgdiff_core.bases import make_basis
    from rgdiff_core.priors import make_prior
    from rgdiff_core.schedules import soft_conditioning_schedule

    basis = make_basis("pixel", (1, SIZE, SIZE))
    sched = soft_conditioning_schedule(torch.from_numpy(CENTRE_OUT), 0.1, clip=True)
    text = files.schedule_json(
        {"order": "custom", "basis": "pixel", "family": "soft"},
        {},
        basis,
        make_prior("white", basis),
        sched,
    )
    loaded = files.parse_schedule_file(text.encode())
    assert loaded.settings["order"] == "custom"
    np.testing.assert_array_equal(loaded.labels, CENTRE_OUT)


def test_labels_too_spread_for_the_softness_say_what_to_change():
    at = _custom_schedule_page(soft=0.01)
    wide = np.linspace(0, 1e6, D)
    _labels_uploader(at).set_value(("wide.csv", files.labels_csv(wide, "wide").encode(), ""))
    at.run()
    assert not at.exception, app_errors(at)
    assert any("use softness >= 0.1" in e.value for e in at.error), [e.value for e in at.error]
