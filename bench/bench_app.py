"""App responsiveness under AppTest, with the issue's budgets (median of 10 each):

- Forward noising at 32 x 32: a time-slider change reruns in <= 0.3 s;
- Schedule designer: a softness change reruns in <= 0.5 s;
- first load of every page (fresh session, empty caches) <= 3 s, timed after torch and the
  app's modules are imported.

    python bench/bench_app.py          # exits 1 if a budget is missed

AppTest reruns the whole script (app.py, sidebar and page) on every change, so these are
upper bounds for the browser, where the time slider reruns only its fragment. One cost they do
not include: a real server runs a full garbage collection after every script run
(runner.postScriptGC), holding the GIL. The last row times that collection once the app is
loaded (budget <= 10 ms; 0.11-0.15 s before ui/memory.freeze_imports froze the imports out
of it).
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402, F401  (imported before any timing, as the budget says)
from streamlit.testing.v1 import AppTest  # noqa: E402

import rgdiff_core.data as core_data  # noqa: E402
from ui import state  # noqa: E402

logging.getLogger("streamlit").setLevel(logging.ERROR)  # AppTest runs have no server

REPEATS = 10
BUDGET_T_S = 0.3
BUDGET_SOFT_S = 0.5
BUDGET_LOAD_S = 3.0
BUDGET_GC_S = 0.01
APP = str(ROOT / "app.py")


def fresh(page: str, query: dict | None = None) -> AppTest:
    """An AppTest that opens `page` directly, as a link does (no run of the home page)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params = state.query_params_all(query or {})
    at.switch_page(state.PAGE_FILES[page])
    return at


def timed_run(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t0
    if at.exception:
        raise SystemExit(f"app raised: {at.exception[0].value}")
    return elapsed


def clear_caches() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()
    core_data._cached.cache_clear()  # the library's own dataset cache (a fresh process)


def bench_time_slider() -> list[float]:
    at = fresh("noising", {"size": 32})
    timed_run(at)
    values = [round(0.05 + 0.09 * i, 2) for i in range(REPEATS)]  # each t new
    times = []
    for t in values:
        at.slider(key="t").set_value(t)
        times.append(timed_run(at))
    return times


def bench_softness() -> list[float]:
    at = fresh("schedule", {"size": 32})
    timed_run(at)
    values = [s for s in state.SOFTNESS if s != 1.0][1 : REPEATS + 1]  # each softness new
    times = []
    for s in values:
        at.select_slider(key="soft").set_value(s)
        times.append(timed_run(at))
    return times


def bench_first_load(page: str) -> list[float]:
    times = []
    for _ in range(REPEATS):
        clear_caches()
        times.append(timed_run(fresh(page)))
    return times


def bench_post_run_gc() -> list[float]:
    """gc.collect(2), as Streamlit runs it after each script run, with every page loaded."""
    import gc

    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        gc.collect(2)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    # One throwaway load imports plotly, PIL and the app's modules (not part of any budget).
    timed_run(fresh("basis"))
    rows = [
        ("Forward noising: t change (32x32)", bench_time_slider(), BUDGET_T_S),
        ("Schedule designer: softness change", bench_softness(), BUDGET_SOFT_S),
    ]
    for page in state.PAGE_FILES:
        rows.append(
            (f"first load: {state.PAGE_FILES[page]}", bench_first_load(page), BUDGET_LOAD_S)
        )
    rows.append(("full collection after a script run", bench_post_run_gc(), BUDGET_GC_S))
    failed = False
    print(f"{'case':44s} {'median':>8s} {'max':>8s} {'budget':>8s}")
    for name, times, budget in rows:
        med = statistics.median(times)
        ok = med <= budget
        failed |= not ok
        print(
            f"{name:44s} {med:7.4f}s {max(times):7.4f}s {budget:7.2f}s  "
            f"{'ok' if ok else 'OVER BUDGET'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
