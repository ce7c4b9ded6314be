"""Give freed heap memory back to the operating system.

Sessions build large temporaries (encoding 60 000 glyphs in a basis, distances to the training
set) on many threads at once. glibc's malloc keeps what they free in per-thread arenas, so a
long-running server's RSS creeps up with every wave of users even though nothing is leaked.
`release_free_memory` asks glibc to return the free pages (malloc_trim); it is throttled, so
calling it at the end of every script run and every queued run costs nothing measurable.
On a C library without malloc_trim (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

MIN_INTERVAL_S = 2.0  # at most one trim per interval, whoever asks

_lock = threading.Lock()
_last = float("-inf")


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
