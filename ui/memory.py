"""Give freed heap memory back to the operating system.

Sessions build large temporaries (encoding 60 000 glyphs in a basis, distances to the training
set) on many threads at once. glibc's malloc keeps what they free in per-thread arenas, so a
long-running server's RSS creeps up with every wave of users even though nothing is leaked.
`release_free_memory` asks glibc to return the free pages (malloc_trim); it is throttled, so
calling it at the end of every script run and every queued run costs nothing measurable.
What is freed between runs (a closed session's stored runs, released by Streamlit after
server.disconnectedSessionTTL) is returned by `start_trimmer`'s background thread, which
calls it every TRIM_PERIOD_S. On a C library without malloc_trim (musl, macOS) both do
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

MIN_INTERVAL_S = 2.0  # at most one trim per interval, whoever asks
TRIM_PERIOD_S = 5.0  # the background thread's period

_lock = threading.Lock()
_last = float("-inf")
_trimmer: threading.Thread | None = None
_halt = threading.Event()


def _load_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _load_trim()


def available() -> bool:
    """Whether this C library can return free heap pages (glibc)."""
    return _TRIM is not None


def release_free_memory(force: bool = False) -> bool:
    """Return free heap pages to the OS, unless one did so within MIN_INTERVAL_S (or `force`);
    True when a trim ran."""
    global _last
    if _TRIM is None:
        return False
    now = time.monotonic()
    with _lock:
        if not force and now - _last < MIN_INTERVAL_S:
            return False
        _last = now
    _TRIM(0)
    return True


def start_trimmer(period_s: float = TRIM_PERIOD_S) -> bool:
    """Start the one background thread that returns free heap pages every `period_s` (a
    daemon: it ends with the server); True if this call started it."""
    global _trimmer
    if _TRIM is None:
        return False
    with _lock:
        if _trimmer is not None and _trimmer.is_alive():
            return False
        _halt.clear()
        _trimmer = threading.Thread(
            target=_trim_forever, args=(period_s,), name="rgdiff-heap-trim", daemon=True
        )
        _trimmer.start()
        return True


def stop_trimmer(timeout: float = 5.0) -> None:
    """Stop the background thread (tests); start_trimmer starts a new one."""
    _halt.set()
    if _trimmer is not None:
        _trimmer.join(timeout)


def _trim_forever(period_s: float) -> None:
    while not _halt.wait(period_s):
        release_free_memory()
