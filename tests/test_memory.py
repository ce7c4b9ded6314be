"""ui.memory: freed heap pages go back to the OS, at most once per interval."""

import platform

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
