"""Honest time (ui/timing.py): durations and rates that fit their boxes, the estimate shown
before Run and the time limit that follows it, the refusal above the cap, and unfinished runs
labelled with their t (never shown under "Samples")."""

from __future__ import annotations

import re
import threading

import pytest

from tests.test_app_part2 import (
    click,
    navigation_mode,  # noqa: F401 - autouse: clicks survive
    open_page,
    stored,
    texts,
)
from ui import run_queue, timing


@pytest.mark.parametrize(
    "seconds, text",
    [(0.4213, "0.42 s"), (9.994, "9.99 s"), (12.34, "12.3 s"), (59.96, "1 min 0 s"),
     (120.04, "2 min 0 s"), (754.6, "12 min 35 s"), (3900, "1 h 5 min")],
)  # fmt: skip
def test_format_duration(seconds, text):
    assert timing.format_duration(seconds) == text


@pytest.mark.parametrize(
    "steps, seconds, unit, value",
    [(100, 0.5, "steps/s", "200"), (100, 12.0, "steps/s", "8.33"), (3, 2.0, "steps/s", "1.5"),
     (10, 40.0, "s/step", "4"), (7, 120.0, "s/step", "17.1"), (0, 1.0, "steps/s", "—")],
)  # fmt: skip
def test_format_rate_never_reads_zero(steps, seconds, unit, value):
    assert timing.format_rate(steps, seconds) == (unit, value)


def estimate_line(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("Estimated time:"))


def test_estimate_before_run_then_from_the_run_itself():
    with timing._COSTS_LOCK:  # a cost another test measured would be "from the last run"
        timing._COSTS.clear()
    at = open_page("sampling", {"steps": 20, "batch": 4})
    line = estimate_line(at)
    assert re.search(r"\*\*[\d.]+ s\*\* \(4 samples × 20 steps at [\d.,]+ (steps/s|s/step)", line)
    assert "measured now" in line and "stops after 2 min 0 s at most" in line
    assert at.button(key="run_button").disabled is False
    click(at, "run_button")
    run = stored(at)[-1]
    assert not run.cancelled
    at.run()  # the next estimate reads the finished run's own time
    assert "from the last run with these settings" in estimate_line(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["wall time"].endswith(" s") and len(metrics["wall time"]) <= 9
    rate = metrics.get("steps/s") or metrics["s/step"]
    assert float(rate.replace(",", "")) > 0


def test_user_time_limit_below_the_estimate_is_announced_and_labelled_unfinished():
    at = open_page("sampling", {"steps": 1000, "batch": 16, "tlimit": 0.05})
    line = estimate_line(at)
    assert "your time limit: 0.05 s" in line and "It will stop unfinished at about t =" in line
    click(at, "run_button")
    run = stored(at)[-1]
    assert run.cancelled and 0 < run.steps_done < 1000
    t = 1 - run.steps_done / 1000
    headings = [h.value for h in at.subheader]
    assert "Samples" not in headings
    assert "Unfinished run: estimates, not samples" in headings
    assert f"Unfinished (time limit of 0.05 s reached) at t = {t:.2f}" in texts(at.warning)
    grid = [i.caption for e in at.get("image") for i in e.proto.imgs if "x̂₀, not" in i.caption]
    assert grid == [f"unfinished at t = {t:.2f}: the estimate x̂₀, not samples (16 of 16)"]


def test_estimate_above_the_cap_is_refused_naming_what_to_reduce(monkeypatch):
    monkeypatch.setattr(timing, "HARD_CAP_S", 1e-4)
    at = open_page("sampling", {"steps": 200, "batch": 4})
    message = texts(at.error)
    assert "more than the 0.00 s one run may take" in message
    assert "Reduce the steps to" in message and "or the batch to 1" in message
    assert at.button(key="run_button").disabled is True


def test_compare_and_conditioning_show_their_estimates():
    at = open_page("compare", {"steps": 10, "b_steps": 20, "batch": 2})
    lines = " ".join(c.value for c in at.caption)
    assert "A: Estimated time:" in lines and "B: Estimated time:" in lines
    assert "2 samples × 20 steps" in lines
    at = open_page("conditioning", {"steps": 10, "cn": 2, "task": "low_pass", "basis": "dct"})
    assert "2 samples × 10 steps" in estimate_line(at)


def test_compare_and_conditioning_label_unfinished_runs():
    at = open_page("compare", {"steps": 1000, "b_steps": 1000, "batch": 16, "tlimit": 0.05})
    click(at, "run_compare")
    grids = [i.caption for e in at.get("image") for i in e.proto.imgs]
    unfinished = [c for c in grids if c.startswith("unfinished at t = ") and "(16 of 16)" in c]
    assert len(unfinished) == 2 and not any("16 of 16 samples" in c for c in grids), grids
    query = {"steps": 1000, "cn": 16, "tlimit": 0.05, "task": "low_pass", "basis": "dct"}
    at = open_page("conditioning", query)
    click(at, "run_cond")
    grids = [i.caption for e in at.get("image") for i in e.proto.imgs]
    assert any(c.startswith("unfinished at t = ") and "(16 of 16)" in c for c in grids), grids
    assert "mean of 16 estimates x̂₀ (unfinished)" in grids


def test_busy_queue_is_announced_and_a_run_waits_its_turn():
    """Every worker of the server's queue held by another 'session' for 1.5 s: the page says
    the queue is busy before Run, the run waits, and its results say how long."""
    queue = run_queue.shared()
    held, release = threading.Barrier(queue.workers["cpu"] + 1), threading.Event()

    def other_session() -> None:
        with queue.slot("other", 60.0, poll_s=0.01):
            held.wait(30)
            release.wait(30)

    others = [threading.Thread(target=other_session) for _ in range(queue.workers["cpu"])]
    for t in others:
        t.start()
    held.wait(30)
    try:
        at = open_page("sampling", {"steps": 10, "batch": 2})
        busy = " ".join(c.value for c in at.caption)
        assert "The server's run queue is busy:" in busy and "0 waiting" in busy
        assert re.search(r"a run started now waits about (\d+ min \d+ s|[\d.]+ s)\.", busy)
        threading.Timer(1.5, release.set).start()
        click(at, "run_button")
    finally:
        release.set()
        for t in others:
            t.join(30)
    run = stored(at)[-1]
    assert not run.cancelled and run.meta["queue_wait_s"] >= 1.0
    assert "in the server's run queue first." in texts(at.caption)
