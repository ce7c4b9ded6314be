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
