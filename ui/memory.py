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

Allocation. By default glibc gives the top of a heap back to the OS as soon as more than a
few MB are free there (a threshold that adapts to the largest recent block), and serves large
blocks with mmap. A sampling step of a shipped network allocates and frees tens of MB of
activations, so every step returned those pages and faulted them in again: 0.2-0.8 s of
system time in a 4.5 s run of 16 x 50 steps. `tune_malloc` (run on import) fixes the mmap
threshold at 32 MiB and the trim threshold at IDLE_TRIM (32 MiB); while a run holds `busy()`
the trim threshold is RUN_TRIM (256 MiB), so a step reuses the last step's pages, and no trim
runs. Keeping 256 MiB all the time held 300 MB more after a wave of 8 sessions: glibc never
returns the free top of a thread's own heap with malloc_trim, only when a free() finds more
than the threshold there.

Garbage collection. Streamlit runs a full collection (gc.collect(2)) after every script run
(runner.postScriptGC) while holding the GIL. With torch, plotly and the app imported, that
walked about 225 000 objects in 0.12 s per run: every click paid it, and so did a queued
run's sampling each time another session's page finished. `freeze_imports` moves what is
alive once the app's modules are imported into the collector's permanent generation
(gc.freeze), so each collection walks only what sessions made since (1.3-3.8 ms measured
in the server). Frozen objects are still freed by reference counting.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import pkgutil
import threading
import time
from contextlib import contextmanager

MIN_INTERVAL_S = 2.0  # at most one trim per interval, whoever asks
TRIM_PERIOD_S = 5.0  # the background thread's period

_lock = threading.Lock()
_last = float("-inf")
_trimmer: threading.Thread | None = None
_halt = threading.Event()


def _libc(name: str, argtypes: list, restype):
    """A function of the C library (None where it has none: musl, macOS for these)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = argtypes, restype
    return fn


_TRIM = _libc("malloc_trim", [ctypes.c_size_t], ctypes.c_int)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap (glibc's largest default)
IDLE_TRIM = 32 << 20  # free memory kept at a heap's top between runs
RUN_TRIM = 256 << 20  # ... and while a run is busy
_MALLOPT = _libc("mallopt", [ctypes.c_int, ctypes.c_int], ctypes.c_int)


def _set_trim_threshold(nbytes: int) -> bool:
    return _MALLOPT is not None and bool(_MALLOPT(M_TRIM_THRESHOLD, nbytes))


def tune_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds (module docstring); True where they were set."""
    return (
        _MALLOPT is not None
        and bool(_MALLOPT(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        and _set_trim_threshold(IDLE_TRIM)
    )


TUNED = tune_malloc()
_busy = 0


@contextmanager
def busy():
    """Mark a run in progress: the larger trim threshold, and trims (not forced) wait until
    no run holds this."""
    global _busy
    with _lock:
        _busy += 1
        if _busy == 1 and TUNED:
            _set_trim_threshold(RUN_TRIM)
    try:
        yield
    finally:
        with _lock:
            _busy -= 1
            if _busy == 0 and TUNED:
                _set_trim_threshold(IDLE_TRIM)


def available() -> bool:
    """Whether this C library can return free heap pages (glibc)."""
    return _TRIM is not None


def release_free_memory(force: bool = False) -> bool:
    """Return free heap pages to the OS, unless one did so within MIN_INTERVAL_S or a run is
    `busy()` (either ignored with `force`); True when a trim ran."""
    global _last
    if _TRIM is None:
        return False
    now = time.monotonic()
    with _lock:
        if not force and (_busy or now - _last < MIN_INTERVAL_S):
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


_frozen = False
_freeze_lock = threading.Lock()  # its own: imports must not wait on the trims' lock


def freeze_imports(package: str = "ui") -> bool:
    """Once per process: import every module of `package` (all a page imports), collect, and
    freeze what is alive (module docstring); True if this call froze."""
    global _frozen
    if _frozen:  # every script run asks: no lock once done
        return False
    with _freeze_lock:
        if _frozen:
            return False
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            importlib.import_module(f"{package}.{info.name}")
        gc.collect()
        gc.freeze()
        _frozen = True
        return True
