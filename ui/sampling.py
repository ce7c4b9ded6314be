"""Streamlit helpers of the Sampling, Compare and Conditioning pages: run controls, the denoiser
cache, running with live progress and cancel, stored runs, playback views, exports and
settings files. The maths lives in rgdiff_core.experiments and rgdiff_core.conditioning.

Running: the sampler runs in the page's script run. A `LiveProgress` callback updates the
progress bar (steps/s, device) and a preview of x_t and x̂₀ at most every PREVIEW_S seconds.
Stop (or any other control) makes Streamlit rerun the script, which raises a script-control
exception at the next update: `execute` catches it, keeps the partial trajectory as a
cancelled run, and lets the rerun go on. The time limit cancels through SamplingCancelled.
Finished runs are kept in st.session_state (the last MAX_STORED), keyed by their frozen spec,
so moving the playback slider never resamples.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.data import gaussian_field_covariance, load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.samplers import SAMPLERS
from ui import cache, files, state, widgets
from ui.specs import DataSpec, ProcessSpec, ScheduleSpec

BIND: Any = "query-params"
MODELS_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
PREVIEW_S = 0.15  # live preview period (plus one step), so updates come every <= 0.25 s
RECORD = 16  # samples whose trajectory is recorded and shown
MAX_STORED = 6  # finished runs kept per session
TERMINAL_SNR_NOTE = 0.01  # signal left at t = 1 above which the Sampling page says so
FAITHFUL_GN = 10.0  # the γ̃_n the page offers then (SNR <= e^-10 left at t = 1)
MAX_STORED_BYTES = 64 * 1024**2  # and at most this much of them (the newest is always kept)
STEPS_RANGE = (10, 1000)
CPU_BUDGET = 2 * 1024**3  # bytes a run may use on the CPU
FIELDS_EXPONENT, FIELDS_MASS = 3.0, 1.0  # the fields dataset's spectrum (data.py defaults)
SWEEP_DEFAULT = ("inf", "3", "1", "0.3", "0.1")
SOFT_TEXT = tuple(state.format_softness(s) for s in state.SOFTNESS)
DEFAULTS: dict[str, Any] = {
    "den": "empirical",
    "cden": "gaussian_fit",  # conditioning (the empirical one returns one training item)
    "sampler": "ancestral", "steps": 100, "batch": 16, "mode": "single",
    "tlimit": 120.0, "sweep": list(SWEEP_DEFAULT),
    "k0": 2.0, "extra": 8, "cn": 8,  # Conditioning page
}  # fmt: skip
RUN_KEYS = ("den", "sampler", "steps", "batch", "mode", "sweep", "tlimit")
SIDEBAR_KEYS = ("data", "size", "device", "seed")
LABELS_KEY = "_labels"  # parse_settings_file's entry for the custom order's labels
DENOISER_LABELS = {
    "empirical": "exact empirical (training set; reproduces training items)",
    "gaussian_fit": "exact Gaussian fitted to the data (mean and covariance)",
    "gaussian_true": "exact Gaussian, true covariance (Gaussian fields)",
}
SAMPLER_LABELS = {
    "ancestral": "ancestral",
    "euler_maruyama": "Euler–Maruyama",
    "heun_ode": "probability-flow ODE (Heun)",
}


def default(key: str) -> Any:
    return DEFAULTS[key.removeprefix("b_")]


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


# ---------------------------------------------------------------- denoisers


def network_files() -> list[str]:
    return sorted(p.name for p in MODELS_DIR.glob("*.pt")) if MODELS_DIR.is_dir() else []


def denoiser_kinds(data: DataSpec) -> list[str]:
    kinds = ["empirical", "gaussian_fit"]
    if data.dataset == "fields":
        kinds.append("gaussian_true")
    return kinds + [f"network:{name}" for name in network_files()]


def denoiser_label(kind: str) -> str:
    return DENOISER_LABELS.get(kind, f"trained network ({kind.removeprefix('network:')})")


def denoiser_picker(data: DataSpec, key: str = "den") -> str:
    kinds = denoiser_kinds(data)
    chosen = st.session_state.get(key)
    if chosen not in kinds:
        st.session_state.pop(key, None)  # e.g. "true covariance" after leaving fields
        if isinstance(chosen, str) and chosen.startswith("network:"):
            st.warning(
                f"The checkpoint **{chosen.removeprefix('network:')}** is no longer in "
                "assets/models/ (removed or renamed), so the default denoiser is used."
            )
    kind = st.selectbox(
        "Denoiser",
        kinds,
        index=kinds.index(default(key)),
        key=key,
        bind=BIND,
        help="What estimates x̂₀ = E[x₀ | x_t]. Exact empirical: the optimal denoiser of the "
        "training set itself, so it reproduces training items. Exact Gaussian: the posterior "
        "mean of a Gaussian (fitted to any dataset, or the true field covariance). Trained "
        "network: a checkpoint from assets/models/.",
    )
    st.caption(denoiser_label(kind))
    if kind.startswith("network:") and network_settings(kind):
        st.button(
            "Use the settings this network was trained for",
            on_click=apply_network_settings,
            args=(kind,),
            key=f"{key}_net_settings",
            help="Dataset, image size, basis, prior and schedule targets of the checkpoint; "
            "the softness stays free (the network serves a range of softness values).",
        )
    if not network_files():
        st.caption("No trained networks yet (assets/models/*.pt): they appear here once trained.")
    return kind


def network_settings(kind: str) -> dict[str, Any]:
    """Control values of the process a checkpoint was trained for, from its JSON sidecar
    (assets/models/<name>.json); {} when there is none or it cannot be read."""
    path = MODELS_DIR / (Path(kind.removeprefix("network:")).stem + ".json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        basis = doc["basis"]
        out = {"data": doc["dataset"], "size": int(doc["size"]), "basis": basis["name"],
               "prior": doc["prior"], "family": "soft", "order": doc["order"],
               "gd": float(doc["gamma_denoise"]), "gn": float(doc["gamma_noise"]),
               "clip": bool(doc["clip"])}  # fmt: skip
        if basis["name"] == "wavelet":
            levels = basis.get("levels")
            out["wavelet"] = basis.get("wavelet", "haar")
            out["levels"] = "max" if levels is None else str(levels)
        for key in ("basis", "prior", "order", "wavelet", "levels"):
            if key in out:
                state.parse_setting(key, out[key])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if out["data"] not in state.DATASETS or out["size"] not in state.SIZES:
        return {}
    return out


def apply_network_settings(kind: str) -> None:
    """on_click: set the controls to the network's process (before any widget is drawn)."""
    for key, value in network_settings(kind).items():
        st.session_state[key] = value


@st.cache_resource(max_entries=6, show_spinner="Building the denoiser…")
def _denoiser(d: DataSpec, b, p, kind: str, stamp: tuple | None, _process):
    # Samplers always pass the noise state, so one denoiser serves every schedule of a
    # (data, basis, prior): the cache key leaves the schedule out on purpose. `stamp` is a
    # checkpoint file's (mtime, size), so a replaced file is loaded again.
    data = cache.dataset(d)
    if kind == "empirical":
        return EmpiricalDenoiser(_process, data.to(_process.device))
    if kind == "gaussian_fit":
        return GaussianDenoiser.fit(_process, data[: cache.N_STATS * 4])
    if kind == "gaussian_true":
        if d.dataset != "fields":
            raise ValueError("the true covariance is known only for the Gaussian fields dataset")
        cov = gaussian_field_covariance(d.size, FIELDS_EXPONENT, FIELDS_MASS)
        return GaussianDenoiser(_process, torch.zeros(_process.dim), cov)
    if kind.startswith("network:"):
        from rgdiff_core.denoisers.network import NetworkDenoiser, load_network_denoiser

        path = MODELS_DIR / kind.removeprefix("network:")
        net, _ = load_network_denoiser(path, device=d.device)
        return NetworkDenoiser(_process, model=net.model).eval()
    raise ValueError(f"unknown denoiser {kind!r}")


def denoiser(spec: ProcessSpec, kind: str):
    """The denoiser on the spec's device; ValueError for an impossible choice."""
    process = process_for(spec, kind)
    return _denoiser(spec.data, spec.basis, spec.prior, kind, checkpoint_stamp(kind), process)


def checkpoint_stamp(kind: str) -> tuple[int, int] | None:
    """(mtime, size) of a network's checkpoint file (None for the exact denoisers);
    ValueError when the file has gone."""
    if not kind.startswith("network:"):
        return None
    name = kind.removeprefix("network:")
    try:
        info = (MODELS_DIR / name).stat()
    except OSError:
        raise ValueError(
            f"the checkpoint {name} is no longer in assets/models/: pick another denoiser"
        ) from None
    return info.st_mtime_ns, info.st_size


@st.cache_resource(max_entries=8, show_spinner="Loading the network…")
def _network_process(name: str, stamp: tuple, schedule: ScheduleSpec, device: str):
    from rgdiff_core.denoisers.network import load_checkpoint, process_from_checkpoint

    ckpt = load_checkpoint(MODELS_DIR / name, map_location="cpu")
    return process_from_checkpoint(
        ckpt,
        softness=schedule.softness,
        clip=schedule.clip,
        device=device,
        gamma_denoise=schedule.gamma_denoise,
        gamma_noise=schedule.gamma_noise,
    )


def network_mismatch(spec: ProcessSpec, kind: str) -> str | None:
    """What differs between the controls and the process a network was trained for."""
    want = network_settings(kind)
    if not want:
        return None  # no sidebar file: load_checkpoint's own checks speak
    have = {"data": spec.data.dataset, "size": spec.data.size, "basis": spec.basis.name,
            "prior": spec.prior.kind, "family": spec.schedule.family}  # fmt: skip
    diff = [f"{k} {want[k]!r} (not {have[k]!r})" for k in have if want[k] != have[k]]
    if not diff:
        return None
    return (f"This network was trained for {', '.join(diff)}. Press 'Use the settings this "
            "network was trained for', or pick another denoiser.")  # fmt: skip


def process_for(spec: ProcessSpec, kind: str):
    """The process a run uses. For a trained network it is the checkpoint's own (basis,
    prior, labels, data variances) at the chosen softness, clip and γ̃ targets, since the
    network was trained for exactly that prior; ValueError if the controls disagree."""
    if not kind.startswith("network:"):
        return cache.process(spec)
    problem = network_mismatch(spec, kind)
    if problem:
        raise ValueError(problem)
    name = kind.removeprefix("network:")
    return _network_process(name, checkpoint_stamp(kind), spec.schedule, spec.data.device)


# ---------------------------------------------------------------- run controls and checks


def sampler_picker(prefix: str = "") -> str:
    return st.selectbox(
        "Sampler",
        tuple(SAMPLERS),
        key=prefix + "sampler",
        index=tuple(SAMPLERS).index(default("sampler")),
        bind=BIND,
        help="ancestral: exact Gaussian step given x̂₀; Euler–Maruyama: the reverse SDE; "
        "Heun: the probability-flow ODE, 2 evaluations per step, deterministic after the "
        "first noise draw.",
    )


def steps_input(prefix: str = "") -> int:
    lo, hi = STEPS_RANGE
    return int(
        st.number_input(
            "Steps",
            min_value=0,
            max_value=100_000,
            value=default("steps"),
            step=10,
            key=prefix + "steps",
            bind=BIND,
            help=f"Uniform time steps from t = 1 to 0 ({lo}..{hi}). More autoregressive "
            "schedules need more steps.",
        )
    )


def batch_input(key: str = "batch", label: str = "Batch (samples)") -> int:
    return int(
        st.number_input(
            label,
            min_value=1,
            max_value=10_000_000,
            value=default(key),
            step=1,
            key=key,
            bind=BIND,
            help="Samples drawn at once; capped by the memory the run needs.",
        )
    )


def sweep_input(label: str = "Softness values", disabled: bool = False) -> tuple[float, ...]:
    """The softness values of a sweep, from diffusion (large) to autoregressive (small)."""
    chosen = st.multiselect(
        label,
        SOFT_TEXT,
        default=list(SWEEP_DEFAULT),
        key="sweep",
        bind=BIND,
        disabled=disabled,
        help="Shown from diffusion (left) to autoregressive (right).",
    )
    return tuple(sorted((float(s) for s in chosen), reverse=True))


def time_limit_input() -> float:
    return float(
        st.number_input(
            "Time limit (s)",
            min_value=0.05,
            max_value=3600.0,
            value=default("tlimit"),
            step=10.0,
            key="tlimit",
            bind=BIND,
            help="A run still going after this long stops by itself, keeping what it has.",
        )
    )


def check_steps(steps: int) -> str | None:
    lo, hi = STEPS_RANGE
    if steps < lo:
        return (
            f"{steps} steps is too few: a sampler needs at least {lo} steps to move from "
            f"noise (t = 1) to data (t = 0). Use {lo}..{hi}."
        )
    if steps > hi:
        return f"{steps:,} steps is more than this page runs (at most {hi}). Use {lo}..{hi}."
    return None


def memory_budget(device: str) -> int:
    if device == "cuda" and torch.cuda.is_available():
        return int(0.5 * torch.cuda.mem_get_info()[0])
    return CPU_BUDGET


def check_batch(batch: int, data: DataSpec, kind: str, runs: int = 1) -> str | None:
    """A message if the run would need more memory than the budget, naming the max batch,
    or if its data is missing (the dataset "upload" with nothing uploaded)."""
    try:
        n_items = len(cache.dataset(data)) if kind == "empirical" else 0
    except ValueError as err:
        return f"Data: {err}"
    dim = int(np.prod(data.shape))
    budget = memory_budget(data.device) // max(1, runs)
    need = ex.run_memory_bytes(batch, dim, ex.MAX_FRAMES, RECORD, n_items)
    if need <= budget:
        return None
    most = ex.max_batch(budget, dim, ex.MAX_FRAMES, RECORD, n_items)
    return (
        f"A batch of {batch:,} needs about {need / 1e9:.1f} GB "
        f"(D = {dim}{f', {n_items} training items' if n_items else ''}"
        f"{f', {runs} runs' if runs > 1 else ''}); the limit here is "
        f"{budget / 1e9:.1f} GB, so the largest batch is {most:,}."
    )


def stiffness_note(spec: ProcessSpec, steps: int, method: str) -> dict:
    """Show the steps the schedule needs and warn below it; returns the stiffness dict."""
    stiff = cache.schedule_stiffness(spec)
    need = stiff["steps_needed"]
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "steps needed",
        f"{need:,}",
        help="Smallest uniform step count with h·max β ≤ 1, "
        "h·max dγ/dt ≤ 2 and 4 steps inside the narrowest component window.",
    )
    c2.metric("max β", f"{stiff['max_beta']:.3g}")
    c3.metric("max dγ/dt", f"{stiff['max_dgamma_dt']:.3g}")
    if steps < need:
        extra = (
            " The ancestral and Euler–Maruyama steps under-disperse by O(h·dγ/dt): "
            "samples come out too smooth."
            if method != "heun_ode"
            else ""
        )
        st.warning(
            f"{steps} steps is below the {need:,} this schedule needs.{extra} Raise the "
            "steps or the softness."
        )
    return stiff


def terminal_note(spec: ProcessSpec, process, kind: str) -> None:
    """Say when the data keep a visible signal at t = 1: the sampler starts from the prior as
    if none were left, which biases non-Gaussian samples towards the simplest images. For a
    network, also say when the γ̃ targets leave the range it was trained on."""
    trained = network_settings(kind) if kind.startswith("network:") else {}
    sch = spec.schedule
    if trained and (sch.gamma_noise > trained["gn"] or sch.gamma_denoise < trained["gd"]):
        st.warning(
            f"This network was trained with γ̃_d = {trained['gd']:g} and γ̃_n = "
            f"{trained['gn']:g}: noisier or cleaner ends than these are outside what it has "
            "seen, and its samples degrade (badly at finite softness). Train one with "
            "`--gamma-noise` for a noisier end."
        )
    info = widgets.attempt(
        "Schedule",
        cache.schedule,
        spec.data,
        spec.basis,
        spec.prior,
        spec.schedule,
        stop=False,
    )
    if info is None:
        return
    snr1 = ex.terminal_snr(process, info.v)
    if snr1 <= TERMINAL_SNR_NOTE:
        return
    end = "γ̃_n (noised end)" if not spec.schedule.scalar else "the noised end of the schedule"
    st.caption(
        f"⚠ At t = 1 the data keep an SNR of up to {snr1:.2g}, but sampling starts from the "
        "prior as if no signal were left: samples of non-Gaussian data lean towards the "
        f"simplest images (too little power in their spectrum). Raise {end} to about 8-10 for "
        "faithful samples (a network: one trained with that γ̃_n); the exact Gaussian "
        "denoiser is not affected."
    )
    if not spec.schedule.scalar and (not trained or trained["gn"] >= FAITHFUL_GN):
        st.button(
            f"Set γ̃_n = {FAITHFUL_GN:g}",
            key="gn_fix",
            on_click=_set_gamma_noise,
            help=f"Moves the γ̃_n (noised end) slider to {FAITHFUL_GN:g}: an SNR of "
            f"e^-{FAITHFUL_GN:g} at most is left at t = 1.",
        )


def _set_gamma_noise() -> None:
    st.session_state["gn"] = FAITHFUL_GN


# ---------------------------------------------------------------- live progress


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

    elements: tuple = ()

    def close(self) -> None:
        """Remove the progress bar and the preview once the results are drawn below."""
        for element in self.elements:
            element.empty()

    def __call__(self, step, steps, t, z, x0_hat, elapsed, run: int = 0) -> None:
        done = run * steps + step + 1
        now = time.perf_counter()
        if now - self.last < PREVIEW_S and done < self.total:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        self.bar(
            min(1.0, done / self.total),
            f"{self.label}step {done:,} of {self.total:,} · "
            f"t = {t:.3f} · {rate:,.0f} steps/s · {self.device}",
        )
        self.image(preview_image(self.process, z, x0_hat, zoom=self.zoom))


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
    key, spec: RunSpec, process, den, known=None, time_limit: float | None = None, label: str = ""
) -> ex.SamplingRun:
    """One run with live progress, stored under key (also when stopped part way)."""
    live = LiveProgress(
        process, spec.steps, cache.device_label(spec.process.data.device), label=label
    )
    rec = ex.Recorder(process, spec.batch, spec.steps, RECORD, on_step=live, time_limit=time_limit)

    def partial():
        return rec.result(None, spec.method, spec.seed, cancelled=True, reason="stopped")

    try:
        run = guarded(
            key,
            lambda: ex.run_sampling(
                process,
                den,
                spec.batch,
                spec.steps,
                spec.method,
                spec.seed,
                known=known,
                recorder=rec,
            ),
            partial,
        )
    except RunOutOfMemory as err:
        out_of_memory_stop(err, live, spec.batch)
    live.close()
    return run


def execute_sweep(
    key, spec: RunSpec, softnesses: tuple[float, ...], time_limit: float | None = None
) -> list[ex.SamplingRun]:
    """Runs at each softness with the same seed, with live progress; stored under key."""
    first = process_for(spec.with_softness(softnesses[0]).process, spec.denoiser)
    live = LiveProgress(
        first, spec.steps * len(softnesses), cache.device_label(spec.process.data.device)
    )
    state_ = ex.SweepState()

    def factory(s):
        sub = spec.with_softness(s)
        return process_for(sub.process, spec.denoiser), denoiser(sub.process, spec.denoiser)

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


def run_status(run: ex.SamplingRun) -> None:
    if run.cancelled:
        st.warning(
            f"Cancelled ({run.reason}) after {run.steps_done} of {run.steps} steps: "
            "showing the partial trajectory; the samples are the last estimate x̂₀."
        )


# ---------------------------------------------------------------- views and exports


def frame_slider(n: int, help: str) -> int:
    """Playback position over n >= 1 recorded frames (the last one first). Not part of the
    page link: it indexes a stored run, not a setting."""
    if n == 1:
        st.caption("One frame was recorded.")
        return 0
    if st.session_state.get("frame", 0) >= n:
        st.session_state.pop("frame")
    return int(st.slider("Frame", 0, n - 1, n - 1, key="frame", help=help))


def zoom_for(size: int, target: int = 96) -> int:
    return max(1, target // size)


def grid_image(x: torch.Tensor, ncols: int = 8, zoom: int = 2) -> np.ndarray:
    return viz.upscale(viz.to_uint8(viz.image_grid(x.clamp(-1, 1), ncols=ncols)), zoom)


def frame_pair(traj: ex.Trajectory, i: int, k: int = RECORD, zoom: int = 2) -> np.ndarray:
    """x_t grid | x̂₀ grid of frame i (first k recorded samples), as one uint8 image."""
    ncols = max(1, math.ceil(math.sqrt(min(k, traj.x_t.shape[1]))))
    left = grid_image(traj.x_t[i, :k], ncols, zoom)
    right = grid_image(traj.x0_hat[i, :k], ncols, zoom)
    gap = np.full((left.shape[0], 4 * zoom) + left.shape[2:], 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def trajectory_gif(runs: list[ex.SamplingRun], k: int = 16, zoom: int = 2) -> bytes:
    """Animated GIF over the recorded frames; several runs side by side."""
    n = min(len(r.trajectory) for r in runs)
    frames = []
    for i in range(n):
        parts = [frame_pair(r.trajectory, i, k, zoom) for r in runs]
        gap = np.full((parts[0].shape[0], 8) + parts[0].shape[2:], 128, np.uint8)
        row = [p for part in parts for p in (part, gap)][:-1]
        frames.append(np.concatenate(row, axis=1))
    return viz.encode_gif(frames, duration_ms=120)


def settings_snapshot(session=None) -> dict[str, str]:
    """Every control that determines a run, as URL strings (from st.session_state, or any
    mapping of widget keys to values)."""
    session = st.session_state if session is None else session
    out = {}
    for key in SIDEBAR_KEYS + state.PROCESS_KEYS + RUN_KEYS:
        value = (
            session[key]
            if key in session
            else (default(key) if key in DEFAULTS else state.default(key))
        )
        out[key] = [str(v) for v in value] if isinstance(value, list) else state.query_value(value)
    return out


def settings_json(settings: dict, run_info: dict, process=None, labels=None) -> str:
    """The settings file: `settings` reload the controls, with `labels` (the custom order's,
    written only when the settings use that order); the rest is for the record."""
    doc = {"format": "rgdiff-sampling", "version": 1, "settings": settings, "run": run_info}
    if labels is not None and settings.get("order") == "custom":
        doc["labels"] = [float(v) for v in labels]
    if process is not None:
        doc |= {"basis": process.basis.spec(), "prior": process.prior.spec()}
    return json.dumps(doc, indent=1, default=str)


def _parse_run_setting(key: str, value: Any) -> Any:
    if key == "den":
        if not isinstance(value, str) or not (
            value in DENOISER_LABELS or value.startswith("network:")
        ):
            raise ValueError(
                f"den must be one of {', '.join(DENOISER_LABELS)} or network:<file>, got {value!r}"
            )
        return value
    if key == "sampler":
        if value not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {value!r}")
        return value
    if key == "mode":
        if value not in ("single", "sweep"):
            raise ValueError(f"mode must be single or sweep, got {value!r}")
        return value
    if key == "sweep":
        if not isinstance(value, list) or not all(v in SOFT_TEXT for v in value):
            raise ValueError(f"sweep must be a list of softness values from {SOFT_TEXT}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    return number if key == "tlimit" else int(number)


def _parse_sidebar(key: str, value: Any) -> Any:
    if key == "data":
        if value == "upload":
            raise ValueError(
                "the run used uploaded images, which are not in the file: pick "
                "'upload' in the sidebar and add them again"
            )
        if value not in state.DATASETS:
            raise ValueError(f"data must be one of {', '.join(state.DATASETS)}, got {value!r}")
        return value
    if key == "device":
        if value not in state.DEVICES:
            raise ValueError(f"device must be one of {', '.join(state.DEVICES)}, got {value!r}")
        return value
    number = int(value)
    if key == "size" and number not in state.SIZES:
        raise ValueError(f"size must be one of {state.SIZES}, got {value!r}")
    if key == "seed" and not 0 <= number <= state.SEED_MAX:
        raise ValueError(f"seed must be in 0..{state.SEED_MAX}, got {value!r}")
    return number


def parse_settings_file(raw: bytes) -> dict[str, Any]:
    """Widget values from an exported settings file; ValueError saying what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a JSON text file") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != "rgdiff-sampling"
        or not isinstance(doc.get("settings"), dict)
    ):
        raise ValueError(
            "not an rgdiff sampling settings file (format 'rgdiff-sampling' with 'settings')"
        )
    out = {}
    for key, value in doc["settings"].items():
        try:
            if key in SIDEBAR_KEYS:
                out[key] = _parse_sidebar(key, value)
            elif key in RUN_KEYS:
                out[key] = _parse_run_setting(key, value)
            else:
                out[key] = state.parse_setting(key, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings: {str(err) or key}") from None
    if out.get("order") == "custom" and "labels" in doc:
        try:
            out[LABELS_KEY] = files.labels_array(doc["labels"])
        except ValueError as err:
            raise ValueError(f"labels: {err}") from None
    return out


def _apply_settings_file() -> None:
    f = st.session_state.get("settings_file")
    if f is None:
        return
    try:
        values = parse_settings_file(f.getvalue())
    except ValueError as err:
        st.session_state["_settings_msg"] = ("error", f"Could not load **{f.name}**: {err}")
        return
    labels = values.pop(LABELS_KEY, None)
    if labels is not None:
        widgets.hold_labels("", labels, f.name)
    for key, value in values.items():
        st.session_state[key] = value
    st.session_state["_settings_msg"] = (
        "success",
        f"Settings loaded from **{f.name}**: press **Run** to reproduce the run.",
    )


def settings_loader() -> None:
    """Uploader for an exported settings JSON; it sets every control (sidebar included)
    in its on_change callback, before any widget is drawn."""
    st.file_uploader(
        "Load settings (JSON)",
        type=["json"],
        key="settings_file",
        on_change=_apply_settings_file,
        help="A file from 'Settings as JSON' below: sets every control, the "
        "sidebar's included; the same seed then reproduces the same samples.",
    )
    msg = st.session_state.pop("_settings_msg", None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])


# ---------------------------------------------------------------- held-out data and metrics


@st.cache_resource(max_entries=8, show_spinner=False)
def held_out(d: DataSpec) -> torch.Tensor:
    """The test split (the training set itself for uploads, which have no split)."""
    if d.dataset == "upload":
        return cache.dataset(d)
    return load_dataset(d.dataset, d.size, split="test")


@st.cache_resource(max_entries=8, show_spinner=False)
def reference_distance(d: DataSpec) -> float:
    return ex.reference_distance(held_out(d), cache.dataset(d))


def metrics_row(run: ex.SamplingRun, d: DataSpec) -> dict[str, Any]:
    m = ex.compare_metrics(run.samples, held_out(d), cache.dataset(d), seed=d.seed)
    return {
        "RAPSD log-error": m["rapsd_log_error"],
        "sliced Wasserstein": m["sliced_wasserstein"],
        "NN distance to train": m["nn_train_mean"],
        "NFE": run.nfe,
        "wall time (s)": run.wall_s,
        "device": run.device,
    }


# ---------------------------------------------------------------- figures


def order_map_at(spec: ProcessSpec, t: float, height: int = 340):
    """The generation-order map of the spec's schedule with time t marked."""
    from ui import plots

    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    curves = cache.curves(spec)
    labels = info.labels if info.labels is not None else -np.log(info.lam)
    omap = viz.generation_order_map(curves.log_snr, labels, curves.t)
    fig = plots.order_map_fig(curves.t, omap["z"], omap["frontier"], omap["first"], height)
    fig.add_vline(
        x=float(t),
        line={"color": "#f1c40f", "width": 3},
        annotation_text=f"t = {t:.2f}",
        annotation_position="top",
    )
    return fig


def committed_fig(spec: ProcessSpec, process, t: float, height: int = 300):
    """Per-group true log10 SNR at t; groups above 0 (SNR > 1) count as committed."""
    from ui import plots

    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    groups = process.basis.groups()
    g = ex.group_log10_snr(process, info.v, t, groups)
    done = int((g > 0).sum())
    return plots.snr_bars_fig(
        [n for n, _ in groups], g, f"committed (SNR > 1): {done} of {len(groups)} groups", height
    )


def committed_count(spec: ProcessSpec, process, t: float) -> tuple[int, int]:
    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    groups = process.basis.groups()
    c = ex.committed_groups(process, info.v, t, groups)
    return int(c.sum()), len(groups)


def spectrum_check_fig(chk: dict, height: int = 340):
    import plotly.graph_objects as go

    k = chk["k"][1:]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=k,
            y=chk["p_true"][1:],
            mode="lines",
            name="true spectrum",
            line={"color": "black", "dash": "dash"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=k,
            y=chk["p"][1:],
            mode="markers",
            name=f"samples (n = {chk['n']}) ± 2 s.e.",
            marker={"color": "#2b5f8c", "size": 7},
            error_y={"type": "data", "array": 2 * chk["se"][1:], "visible": True},
        )
    )
    fig.update_xaxes(type="log", title="|k|")
    fig.update_yaxes(type="log", title="power P(k)", exponentformat="power")
    fig.update_layout(
        title={"text": "RAPSD: samples vs the true spectrum", "font": {"size": 14}},
        height=height,
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


SWEEP_METRICS = ("RAPSD log-error", "sliced Wasserstein", "NN distance to train", "wall time (s)")


def sweep_metrics_fig(rows: list[dict], reference: float | None = None, height: int = 320):
    """Each metric against softness (categorical axis, diffusion on the left)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(SWEEP_METRICS), subplot_titles=SWEEP_METRICS)
    x = [state.format_softness(r["softness"]) for r in rows]
    for j, name in enumerate(SWEEP_METRICS, start=1):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r[name] for r in rows],
                mode="lines+markers",
                name=name,
                showlegend=False,
                line={"color": "#2b5f8c"},
            ),
            row=1,
            col=j,
        )
        fig.update_xaxes(title="softness", type="category", row=1, col=j)
    if reference is not None:
        fig.add_hline(
            y=reference,
            line={"dash": "dot", "color": "grey"},
            row=1,
            col=3,
            annotation_text="held-out data",
            annotation_position="bottom right",
        )
    fig.update_layout(height=height, margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


def use_check_settings(steps_needed: int) -> None:
    """on_click: settings under which the Gaussian-field check is exact up to Monte-Carlo
    error: the process fully noised at t = 1 (γ̃_n = 10), the fast-converging ODE sampler
    with enough steps, and 128 samples."""
    st.session_state["gn"] = 10.0
    st.session_state["sampler"] = "heun_ode"
    st.session_state["steps"] = int(min(STEPS_RANGE[1], max(100, steps_needed)))
    st.session_state["batch"] = 128


def masked_rgb(image: torch.Tensor, known: torch.Tensor, zoom: int) -> np.ndarray:
    """One grey image (1, H, W) as RGB with unknown pixels (known (1, H, W) False) in red."""
    grey = viz.to_uint8(image[0].clamp(-1, 1))
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    unknown = ~known[0].cpu().numpy()
    rgb[unknown] = (0.4 * rgb[unknown] + np.array([150, 30, 30])).astype(np.uint8)
    return viz.upscale(rgb, zoom)


def execute_extension(
    key,
    spec: RunSpec,
    process,
    den,
    image,
    extra: int,
    stride: int,
    time_limit: float | None = None,
) -> torch.Tensor:
    """extend_columns with a progress bar; stored under key (a time limit keeps the columns
    done so far)."""
    from rgdiff_core.conditioning import extend_columns
    from rgdiff_core.samplers import SamplingCancelled

    bar = st.progress(0.0, text="extending…")
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        rate = done / max(time.perf_counter() - start, 1e-9)
        bar.progress(
            done / total,
            text=f"column {done} of {total} · {rate:.1f} columns/s · "
            f"{cache.device_label(spec.process.data.device)}",
        )
        if time_limit is not None and time.perf_counter() - start > time_limit and done < total:
            raise SamplingCancelled(f"time limit of {time_limit:g} s reached")

    gen = torch.Generator(device=process.device).manual_seed(spec.seed)
    out = extend_columns(
        process,
        den,
        image,
        extra,
        spec.steps,
        spec.method,
        spec.batch,
        stride,
        generator=gen,
        callback=progress,
    )
    bar.empty()
    remember(key, out)
    return out
