"""Honest time: an estimated duration before Run, the time limit that follows it, and the
duration and rate formats of the pages.

Cost model of one sampler run of S steps at batch B: setup + (S + 1) * per_step (the final
t = 0 estimate is one more evaluation). per_step is measured on this machine, now: the chosen
sampler runs MEASURE_STEPS steps with the chosen denoiser at batch b = min(B, MEASURE_BATCH) on
the run's device, and per_step is the median time between its step callbacks; above b it is
scaled by B / b (the per-sample work of every denoiser is linear in the batch, so this errs
long). The measurement takes a handful of denoiser calls, outside the run queue. A finished run
replaces it with its own figure (wall time / (S + 1)). Costs are kept per (denoiser, data,
basis, sampler, batch, device) in one bounded cache (MAX_COSTS) shared by all sessions: the
cost is the machine's, not the session's.

Limit: the user's time limit when one is set, else max(MIN_LIMIT_S, 3 x estimate). A run that
could hold a worker longer than HARD_CAP_S (estimate above it, and no user limit below it) is
refused with the steps and batch that would fit.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import streamlit as st
import torch

from rgdiff_core.samplers import sample_latents
from ui import run_queue

MEASURE_STEPS = 4  # sampler steps timed per measurement (3 intervals)
MEASURE_BATCH = 64  # largest batch measured; larger ones are scaled from it
MAX_COSTS = 256  # cached cost figures
MIN_LIMIT_S = 120.0  # the automatic time limit is at least this ...
LIMIT_FACTOR = 3.0  # ... and this many times the estimate
HARD_CAP_S = 600.0  # longest estimated run accepted (it holds one of the server's workers)


@dataclass(frozen=True)
class StepCost:
    per_step: float  # seconds per sampler step at the run's batch
    setup: float  # seconds before the first step (terminal noise, time grid)
    source: str  # how the figure was obtained, in words


@dataclass(frozen=True)
class Estimate:
    """What a run will take. seconds: all its sampler runs; limit: the time limit it gets
    (None: refused, see problem); text: the line shown before Run."""

    seconds: float
    limit: float | None
    cost: StepCost | None
    text: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


# ---------------------------------------------------------------- formats


def format_duration(seconds: float) -> str:
    """Short and whole: '0.42 s', '12.3 s', '2 min 0 s', '1 h 5 min'."""
    if not math.isfinite(seconds):
        return "—"
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.2f} s"
    if s < 59.95:
        return f"{s:.1f} s"
    if s < 3600:
        m, r = divmod(round(s), 60)
        return f"{m} min {r} s"
    h, r = divmod(round(s), 3600)
    return f"{h} h {r // 60} min"


def format_rate(steps: float, seconds: float) -> tuple[str, str]:
    """(label, value) of a step rate: 'steps/s' with three significant figures, or 's/step'
    below one step per second (never a rounded-down '0')."""
    if seconds <= 0 or steps <= 0:
        return "steps/s", "—"
    rate = steps / seconds
    if rate >= 1:
        return "steps/s", f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"
    return "s/step", f"{seconds / steps:.3g}"


# ---------------------------------------------------------------- measured cost

_COSTS: OrderedDict[tuple, StepCost] = OrderedDict()
_COSTS_LOCK = threading.Lock()


def cost_key(spec, batch: int | None = None) -> tuple:
    """(denoiser, data, basis, sampler, batch, device): what a step's cost depends on; the
    seed and the schedule do not change it."""
    data = replace(spec.process.data, seed=0)
    b = spec.batch if batch is None else batch
    return (spec.denoiser, data, spec.process.basis, spec.method, b, data.device)


def _keep(key: tuple, cost: StepCost) -> StepCost:
    with _COSTS_LOCK:
        _COSTS[key] = cost
        _COSTS.move_to_end(key)
        while len(_COSTS) > MAX_COSTS:
            _COSTS.popitem(last=False)
    return cost


def measure(process, den, method: str, batch: int) -> tuple[float, float]:
    """(per_step, setup) seconds of the sampler at this batch, from MEASURE_STEPS steps."""
    run_queue.shared().pin_threads()
    cuda = process.device.type == "cuda"
    ticks: list[float] = []

    def tick(_info) -> None:
        if cuda:
            torch.cuda.synchronize(process.device)
        ticks.append(time.perf_counter())

    gen = torch.Generator(device=process.device).manual_seed(0)
    start = time.perf_counter()
    try:
        sample_latents(process, den, batch, MEASURE_STEPS, method, generator=gen, callback=tick)
    except (RuntimeError, ValueError):  # e.g. a 4-step run diverging: the steps timed count
        pass
    ticks = [start, *ticks] if len(ticks) < 2 else ticks
    if len(ticks) < 2:
        ticks.append(time.perf_counter())
    per_step = statistics.median(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    return per_step, max(0.0, ticks[0] - start - per_step)


def step_cost(spec, process, den) -> StepCost:
    """The cached cost of a step of this run, measured if there is none."""
    key = cost_key(spec)
    with _COSTS_LOCK:
        if key in _COSTS:
            _COSTS.move_to_end(key)
            return _COSTS[key]
    b = min(spec.batch, MEASURE_BATCH)
    per_step, setup = measure(process, den, spec.method, b)
    scale = spec.batch / b
    how = "measured now" + (f" at batch {b}, scaled to {spec.batch:,}" if scale > 1 else "")
    return _keep(key, StepCost(per_step * scale, setup, how))


def record_run(spec, run) -> None:
    """A finished run's own per-step figure replaces the measured one."""
    if run.cancelled or run.steps_done < 1 or run.wall_s <= 0 or run.meta.get("softness"):
        return
    per_step = run.wall_s / (run.steps + 1)
    _keep(cost_key(spec), StepCost(per_step, 0.0, "from the last run with these settings"))


# ---------------------------------------------------------------- the estimate


def estimate(spec, process, den, runs: int = 1, user_limit: float | None = None) -> Estimate:
    """The estimate of `runs` sampler runs of spec (a sweep's values, an extension's windows)
    and the limit that follows it; refused above HARD_CAP_S with what to reduce."""
    cost = step_cost(spec, process, den)
    one = cost.setup + (spec.steps + 1) * cost.per_step
    seconds = runs * one
    rate_label, rate = format_rate(1, cost.per_step)
    work = (
        f"{runs} runs × " if runs > 1 else ""
    ) + f"{spec.batch:,} samples × {spec.steps:,} steps at {rate} {rate_label}"
    head = f"Estimated time: **{format_duration(seconds)}** ({work}, {cost.source}"
    if seconds > HARD_CAP_S and (user_limit is None or user_limit > HARD_CAP_S):
        room = HARD_CAP_S / runs - cost.setup
        most_steps = max(0, int(room / cost.per_step) - 1)
        most_batch = max(1, int(spec.batch * HARD_CAP_S / seconds))
        fewer = " or fewer sweep values" if runs > 1 else ""
        problem = (
            f"This run would take about {format_duration(seconds)} ({work}), more than the "
            f"{format_duration(HARD_CAP_S)} one run may take on this server. Reduce the steps "
            f"to {most_steps:,} or the batch to {most_batch:,}{fewer}"
            + (", or run on the GPU." if torch.cuda.is_available() else ".")
        )
        return Estimate(seconds, None, cost, head + ").", problem)
    if user_limit is None:
        limit = max(MIN_LIMIT_S, LIMIT_FACTOR * seconds)
        tail = f"; stops after {format_duration(limit)} at most)."
    else:
        limit = float(user_limit)
        tail = f"; your time limit: {format_duration(limit)})."
        if limit < seconds:
            t_end = 1 - limit / seconds
            tail += (
                f" It will stop unfinished at about t = {t_end:.2f}: clear the time limit "
                "(auto) to let it finish."
            )
    return Estimate(seconds, limit, cost, head + tail)


def wait_text(seconds: float) -> str:
    """'about 12.3 s', or what to expect when the runs ahead are past their estimates."""
    return f"about {format_duration(seconds)}" if seconds > 0 else "until a running one ends"


def workers(n: int) -> str:
    return f"{n} worker" + ("" if n == 1 else "s")


def outlook(device: str) -> str:
    """A line on the run queue's load, or '' when a new run would start at once."""
    queue = run_queue.shared()
    status = queue.peek(device)
    if status.running < status.workers and not status.queued:
        return ""
    return (
        f"The server's run queue is busy: {status.running} running on "
        f"{workers(status.workers)}, {status.queued} waiting; a run started now waits "
        f"{wait_text(status.wait_s)}."
    )


def before_run(spec, process, den, user_limit: float | None = None, runs: int = 1) -> Estimate:
    """Show the estimate (or the refusal) before the Run button; the Estimate."""
    with st.spinner("Timing a few steps for the estimate…"):
        est = estimate(spec, process, den, runs, user_limit)
    if est.ok:
        st.caption(est.text)
        busy = outlook(spec.process.data.device)
        if busy:
            st.caption(busy)
    else:
        st.error(est.problem)
    return est
