"""Running a sampler from a page: live progress with cancel, and the session's run store.

A run executes in the page's script run. A `LiveProgress` callback updates the progress bar
(steps/s, device) and a preview of x_t and x̂₀ at most every PREVIEW_S seconds. Stop (or any
other control) makes Streamlit rerun the script, which raises a script-control exception at the
next update: `guarded` catches it, keeps the partial trajectory as a cancelled run, and lets the
rerun go on. The time limit cancels through SamplingCancelled. Finished runs are kept in
st.session_state (the last MAX_STORED, at most MAX_STORED_BYTES), keyed by their frozen spec,
so moving a playback slider never resamples.

Every run goes through the server's run queue (ui/run_queue.py): it waits for a worker,
showing its place and an estimated wait from `estimate_s` (ui/timing.py); Stop or any other
control while it waits drops it from the queue, and so does closing the session (checked
each poll, and each progress update of a running run, which then stops as cancelled).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.samplers import SamplingCancelled, StepInfo
from rgdiff_core.specs import ProcessSpec
from ui import cache, denoiser_choice, run_queue, timing, widgets

PREVIEW_S = 0.15  # live preview period (plus one step), so updates come every <= 0.25 s
RECORD = 16  # samples whose trajectory is recorded and shown
MAX_STORED = 6  # finished runs kept per session
MAX_STORED_BYTES = 64 * 1024**2  # and at most this much of them (the newest is always kept)
STATUS_EVERY_S = 2.0  # a queued run's place and wait are re-sent this often (and on a new place)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's samples (the store key)."""

    process: ProcessSpec
    denoiser: str
    method: str
    steps: int
    batch: int

    @property
    def seed(self) -> int:
        return self.process.data.seed

    def with_softness(self, s: float) -> RunSpec:
        sched = replace(self.process.schedule, softness=float(s))
        return replace(self, process=replace(self.process, schedule=sched))


def preview_image(
    process, z: torch.Tensor, x0_hat: torch.Tensor, k: int = 8, zoom: int = 2
) -> np.ndarray:
    """uint8 image: x_t (top row) over x̂₀ (bottom row) for the first k samples."""
    with torch.inference_mode():
        imgs = process.decode(torch.cat([z[:k], x0_hat[:k]])).float().cpu()
    return viz.upscale(viz.to_uint8(viz.image_grid(imgs.clamp(-1, 1), ncols=min(k, len(z)))), zoom)


class LiveProgress:
    """Sampler on_step callback: progress text and preview, at most every PREVIEW_S seconds.
    `bar(fraction, text)` and `image(array)` default to Streamlit elements."""

    def __init__(
        self, process, total_steps: int, device: str, bar=None, image=None, label: str = ""
    ):
        self.process, self.total, self.device, self.label = process, total_steps, device, label
        if bar is None:
            handle = st.progress(0.0, text=f"{label}starting…")
            slot = st.empty()
            bar = lambda f, text: handle.progress(f, text=text)  # noqa: E731
            image = lambda a: slot.image(a, caption="live: x_t (top), x̂₀ (bottom)")  # noqa: E731
            self.elements = (handle, slot)
        self.bar, self.image = bar, image
        self.start = self.last = time.perf_counter()
        self.zoom = max(1, 64 // process.shape[1])
        self.session = session_id()

    elements: tuple = ()

    def close(self) -> None:
        """Remove the progress bar and the preview once the results are drawn below."""
        for element in self.elements:
            element.empty()

    def __call__(self, info: StepInfo) -> None:
        done = info.run * info.steps + info.done
        now = time.perf_counter()
        if now - self.last < PREVIEW_S and done < self.total:
            return
        self.last = now
        if not session_alive(self.session):  # a closed tab frees its worker
            raise SamplingCancelled("the session closed")
        unit, rate = timing.format_rate(done, now - self.start)
        self.bar(
            min(1.0, done / self.total),
            f"{self.label}step {done:,} of {self.total:,} · "
            f"t = {info.t:.3f} · {rate} {unit} · {self.device}",
        )
        self.image(preview_image(self.process, info.z, info.x0_hat, zoom=self.zoom))


def session_id() -> str:
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx is not None else ""


def session_alive(session: str) -> bool:
    """False once the browser tab of a session has gone (True outside a server)."""
    if not session or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session)


@contextmanager
def queued(
    device: str, estimate_s: float, label: str = "", status: bool = True
) -> Iterator[run_queue.Ticket]:
    """Hold one of the server's run workers for the body, showing the place in the queue and
    the estimated wait meanwhile (status=False: nothing on the page, for cached functions,
    whose page elements Streamlit would replay on every hit)."""
    queue, session = run_queue.shared(), session_id()
    slot = st.empty() if status else None
    shown: dict = {}

    def show(status: run_queue.QueueStatus) -> None:
        # A new place at once, else a fresh estimate every STATUS_EVERY_S: each update is a
        # message to the browser, and many queued sessions polling twice a second cost the
        # one core that also runs the queue (Stop while queued is seen at the next update).
        now = time.monotonic()
        if shown.get("place") == status.place and now - shown["at"] < STATUS_EVERY_S:
            return
        shown.update(place=status.place, at=now)
        slot.info(
            f"{label}Queued: place {status.place} of {status.queued} in the server's run "
            f"queue ({status.running} running on {timing.workers(status.workers)}) · waits "
            f"{timing.wait_text(status.wait_s)}. Stop leaves the queue."
        )

    try:
        on_wait = show if status else None
        with queue.slot(session, estimate_s, device, on_wait, lambda: session_alive(session)) as t:
            if slot is not None:
                slot.empty()
            yield t
    except run_queue.QueueDropped:
        st.stop()


def _store() -> OrderedDict:
    return st.session_state.setdefault("_rgdiff_runs", OrderedDict())


def remember(key, value, store: OrderedDict | None = None) -> None:
    """Keep a run under key. Pass `store` (taken before the run) when the script may be
    being interrupted: then no Streamlit call is made, since each would raise again."""
    store = _store() if store is None else store
    store[key] = value
    store.move_to_end(key)
    while len(store) > 1 and (
        len(store) > MAX_STORED or sum(map(stored_bytes, store.values())) > MAX_STORED_BYTES
    ):
        store.popitem(last=False)


def stored_bytes(value: Any) -> int:
    """Bytes held by the tensors and arrays of a stored result (a run, a list of runs, ...)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, list | tuple):
        return sum(map(stored_bytes, value))
    if isinstance(value, dict):
        return sum(map(stored_bytes, value.values()))
    if hasattr(value, "__dataclass_fields__"):
        return sum(stored_bytes(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


def _running() -> set:
    return st.session_state.setdefault("_rgdiff_running", set())


def recall(key, wait_s: float = 3.0):
    """The stored run for key. If a run for key is still being wound up by an interrupted
    script thread (Streamlit may start the next run in a new thread before the old one has
    stored its partial result), wait up to wait_s seconds for it."""
    running, deadline = _running(), time.monotonic() + wait_s
    while key in running and time.monotonic() < deadline:
        time.sleep(0.05)
    return _store().get(key)


def guarded(key, run_fn, partial_fn):
    """result = run_fn(), stored under key. If a rerun or stop interrupts it, the partial
    result partial_fn() is stored instead and the interrupt goes on; partial_fn must not
    call Streamlit (the interrupt would fire again)."""
    store, running = _store(), _running()
    running.add(key)
    try:
        result = run_fn()
    except ScriptControlException:
        remember(key, partial_fn(), store)
        raise
    except (torch.OutOfMemoryError, MemoryError) as err:
        widgets.free_memory()  # nothing of the run is kept
        where = "GPU" if isinstance(err, torch.OutOfMemoryError) else "host"
        raise RunOutOfMemory(where) from None
    finally:
        running.discard(key)
    remember(key, result, store)
    return result


class RunOutOfMemory(Exception):
    """A run stopped by running out of memory ("GPU" or "host"), after freeing the cache."""


def out_of_memory_stop(err: RunOutOfMemory, live: LiveProgress, batch: int) -> None:
    """Clear the progress, say what to change, and end the page's run."""
    live.close()
    st.error(
        f"Out of {err} memory part way through the run, so nothing was kept. Try a batch "
        f"of {max(1, batch // 2):,} (now {batch:,}), a smaller image size or fewer sweep "
        "values, or the CPU; the next run starts from a clean memory state."
    )
    st.stop()


def execute(
    key,
    spec: RunSpec,
    process,
    den,
    known=None,
    time_limit: float | None = None,
    label: str = "",
    estimate_s: float = 0.0,
) -> ex.SamplingRun:
    """One run through the run queue with live progress, stored under key (also when stopped
    part way); a finished run's per-step time becomes the next estimate's."""
    with queued(spec.process.data.device, estimate_s, label) as ticket:
        run = _execute(key, spec, process, den, known, time_limit, label, ticket.waited_s)
    timing.record_run(spec, run)
    return run


def _execute(key, spec, process, den, known, time_limit, label, waited_s) -> ex.SamplingRun:
    live = LiveProgress(
        process, spec.steps, cache.device_label(spec.process.data.device), label=label
    )
    rec = ex.Recorder(process, spec.batch, spec.steps, RECORD, on_step=live, time_limit=time_limit)

    def partial():
        run = rec.result(None, spec.method, spec.seed, cancelled=True, reason="stopped")
        run.meta["queue_wait_s"] = waited_s
        return run

    def sample():
        run = ex.run_sampling(
            process, den, spec.batch, spec.steps, spec.method, spec.seed, known=known, recorder=rec
        )
        run.meta["queue_wait_s"] = waited_s
        return run

    try:
        run = guarded(key, sample, partial)
    except RunOutOfMemory as err:
        out_of_memory_stop(err, live, spec.batch)
    live.close()
    return run


def execute_sweep(
    key,
    spec: RunSpec,
    softnesses: tuple[float, ...],
    time_limit: float | None = None,
    estimate_s: float = 0.0,
) -> list[ex.SamplingRun]:
    """Runs at each softness with the same seed, through the run queue as one job, with live
    progress; stored under key."""
    with queued(spec.process.data.device, estimate_s) as ticket:
        runs = _execute_sweep(key, spec, softnesses, time_limit)
    for r in runs:
        r.meta["queue_wait_s"] = ticket.waited_s
    return runs


def _execute_sweep(key, spec, softnesses, time_limit) -> list[ex.SamplingRun]:
    first = denoiser_choice.process_for(spec.with_softness(softnesses[0]).process, spec.denoiser)
    live = LiveProgress(
        first, spec.steps * len(softnesses), cache.device_label(spec.process.data.device)
    )
    state_ = ex.SweepState()

    def factory(s):
        sub = spec.with_softness(s)
        return (
            denoiser_choice.process_for(sub.process, spec.denoiser),
            denoiser_choice.denoiser(sub.process, spec.denoiser),
        )

    def partial():
        return state_.partial(spec.method, spec.seed)

    def sweep():
        return ex.softness_sweep(
            factory,
            softnesses,
            spec.batch,
            spec.steps,
            spec.method,
            spec.seed,
            RECORD,
            on_step=live,
            time_limit=time_limit,
            state=state_,
        )

    try:
        runs = guarded(key, sweep, partial)
    except RunOutOfMemory as err:
        out_of_memory_stop(err, live, spec.batch)
    live.close()
    return runs


def stopped_at(run: ex.SamplingRun) -> float:
    """The time t an unfinished run reached (uniform steps from t = 1; 1 before any step)."""
    return 1.0 - run.steps_done / run.steps


def unfinished_label(run: ex.SamplingRun) -> str:
    """What an unfinished run's images are, for a heading or a caption."""
    if run.steps_done == 0:
        return "unfinished before the first step: the prior mean, no estimate yet"
    return f"unfinished at t = {stopped_at(run):.2f}: the estimate x̂₀, not samples"


def run_status(run: ex.SamplingRun) -> None:
    if run.cancelled:
        st.warning(
            f"Unfinished ({run.reason}) at t = {stopped_at(run):.2f}, after "
            f"{run.steps_done} of {run.steps} steps: showing the partial trajectory and the "
            "last estimate x̂₀, not finished samples."
        )


def execute_extension(
    key,
    spec: RunSpec,
    process,
    den,
    image,
    extra: int,
    stride: int,
    time_limit: float | None = None,
    estimate_s: float = 0.0,
) -> torch.Tensor:
    """extend_columns through the run queue with a progress bar; stored under key (a time
    limit keeps the columns done so far)."""
    from rgdiff_core.conditioning import extend_columns

    with queued(spec.process.data.device, estimate_s):
        bar = st.progress(0.0, text="extending…")
        start = time.perf_counter()
        out = extend_columns(
            process,
            den,
            image,
            extra,
            spec.steps,
            spec.method,
            spec.batch,
            stride,
            generator=torch.Generator(device=process.device).manual_seed(spec.seed),
            callback=lambda info: _column_progress(bar, info, start, time_limit, spec),
        )
    bar.empty()
    remember(key, out)
    return out


def _column_progress(bar, info: StepInfo, start: float, time_limit, spec: RunSpec) -> None:
    done, total = info.done, info.steps
    elapsed = time.perf_counter() - start
    unit, rate = timing.format_rate(done, elapsed)
    bar.progress(
        done / total,
        text=f"column {done} of {total} · {rate} {unit.replace('step', 'column')} · "
        f"{cache.device_label(spec.process.data.device)}",
    )
    if time_limit is not None and elapsed > time_limit and done < total:
        raise SamplingCancelled(f"time limit of {time_limit:g} s reached")
