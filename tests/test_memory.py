"""ui.memory: freed heap pages go back to the OS, at most once per interval."""

import platform
import threading
import time

import pytest

from ui import memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_is_available_on_glibc():
    assert memory.available()


def test_throttled_to_one_trim_per_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(memory, "_last", float("-inf"))
    assert memory.release_free_memory()
    assert not memory.release_free_memory()  # within MIN_INTERVAL_S of the first
    assert memory.release_free_memory(force=True)
    monkeypatch.setattr(memory, "_last", memory._last - memory.MIN_INTERVAL_S - 1)
    assert memory.release_free_memory()
    assert calls == [0, 0, 0]


def test_nothing_to_do_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory, "_TRIM", None)
    assert not memory.available()
    assert not memory.release_free_memory(force=True)


def test_run_queue_trims_after_each_run(monkeypatch):
    from ui import run_queue

    trims = []
    monkeypatch.setattr(run_queue, "release_free_memory", lambda: trims.append(1))
    queue = run_queue.RunQueue(cpu_workers=1, threads=1)
    with queue.slot("a", 0.1):
        assert trims == []
    assert trims == [1]


def test_background_trimmer_runs_once_per_server(monkeypatch):
    """One thread, however many script runs ask for it; it trims every period."""
    calls = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(memory, "MIN_INTERVAL_S", 0.0)
    memory.stop_trimmer()
    try:
        assert memory.start_trimmer(period_s=0.02)
        assert not memory.start_trimmer(period_s=0.02)  # already running
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(calls) >= 3
        names = [t.name for t in threading.enumerate()]
        assert names.count("rgdiff-heap-trim") == 1
    finally:
        memory.stop_trimmer()
    assert not memory._trimmer.is_alive()


def test_load_bench_waits_for_a_trim_before_reading_rss():
    """bench_load reads the server's RSS after closed sessions are released and one trim."""
    from test_load import _bench_load

    assert _bench_load().TRIM_PERIOD_S == memory.TRIM_PERIOD_S


def test_no_trim_while_a_run_is_busy(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_TRIM", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(memory, "_last", float("-inf"))
    with memory.busy():
        assert not memory.release_free_memory()  # mid-run: the run's pages stay
        assert memory.release_free_memory(force=True)
    monkeypatch.setattr(memory, "_last", float("-inf"))
    assert memory.release_free_memory()
    assert calls == [0, 0]


def test_busy_keeps_a_runs_pages_and_gives_them_back_after(monkeypatch):
    set_to = []
    monkeypatch.setattr(memory, "TUNED", True)
    monkeypatch.setattr(memory, "_set_trim_threshold", lambda n: set_to.append(n) or True)
    with memory.busy():
        with memory.busy():  # two runs at once: one switch each way
            pass
        assert set_to == [memory.RUN_TRIM]
    assert set_to == [memory.RUN_TRIM, memory.IDLE_TRIM]


def test_a_queued_run_holds_busy_while_it_runs():
    from ui import run_queue

    queue = run_queue.RunQueue(cpu_workers=1, threads=1)
    with queue.slot("a", 0.1):
        assert memory._busy == 1
    assert memory._busy == 0


FAULTS = """
import resource, sys, threading, torch
torch.set_num_threads(1)
import contextlib
run = contextlib.nullcontext
if sys.argv[1] == "tuned":
    import ui.memory
    assert ui.memory.TUNED
    run = ui.memory.busy
def steps(out):
    x, conv = torch.randn(16, 64, 32, 32), torch.nn.Conv2d(64, 64, 3, padding=1)
    def step():  # a network step's shape of allocations: about 14 MB freed each time
        with torch.no_grad():
            h = torch.nn.functional.silu(conv(x))
            return (torch.cat([h, x], 1) * 2).sum()
    with run():
        step(), step()
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(20):
            step()
    out.append((resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / 20)
out = []
t = threading.Thread(target=steps, args=(out,))
t.start(), t.join()
print(out[0])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")
def test_tuned_malloc_keeps_a_steps_pages():
    """Without the fixed thresholds every step gives its activations back to the OS and faults
    them in again (3 600 faults a step measured); in a run (busy) a step reuses the last
    one's."""
    import subprocess
    import sys
    from pathlib import Path

    def faults(mode: str) -> float:
        root = Path(__file__).resolve().parents[1]
        run = [sys.executable, "-c", FAULTS, mode]
        return float(subprocess.check_output(run, cwd=root, text=True).split()[-1])

    plain, tuned = faults("plain"), faults("tuned")
    assert plain > 1000, plain  # the thrash this guards against is there by default
    assert tuned < plain / 10, (plain, tuned)


def test_freeze_imports_once_and_collections_skip_the_imports():
    """After the freeze a full collection walks only what was made since, not the ~200 000
    objects of torch, plotly, Streamlit and the app (0.12 s a collection before)."""
    import gc

    first = memory.freeze_imports()
    assert not memory.freeze_imports()  # once per process
    if first:
        assert gc.get_freeze_count() > 50_000
        assert len(gc.get_objects()) < gc.get_freeze_count() / 10
    assert gc.get_freeze_count() > 50_000
    import pkgutil
    import sys

    import ui

    assert all(f"ui.{m.name}" in sys.modules for m in pkgutil.iter_modules(ui.__path__))
