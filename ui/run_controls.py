"""Run controls of the Sampling, Compare and Conditioning pages (sampler, steps, batch,
softness sweep, time limit) and the checks made before a run: steps in range, the run's memory
within the device's budget, the sweep's choices, the schedule's stiffness and the signal left
at t = 1. A check returns a plain-words message naming what to change, or None.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
import torch

from rgdiff_core import experiments as ex
from rgdiff_core.samplers import SAMPLERS
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import cache, denoiser_choice, prior_term, state, widgets
from ui.runs import RECORD

BIND: Any = "query-params"
STEPS_RANGE = (10, 1000)
CPU_BUDGET = 2 * 1024**3  # bytes a run may use on the CPU
SAMPLER_LABELS = {
    "ancestral": "ancestral",
    "ancestral_corrected": "ancestral, variance-corrected",
    "euler_maruyama": "Euler–Maruyama",
    "heun_ode": "probability-flow ODE (Heun)",
    "ddim": "probability-flow ODE, exponential (DDIM)",
    "dpm2m": "probability-flow ODE, exponential 2nd order (DPM-Solver++ 2M)",
}


def sampler_picker(prefix: str = "") -> str:
    return st.selectbox(
        "Sampler",
        tuple(SAMPLERS),
        key=prefix + "sampler",
        index=tuple(SAMPLERS).index(state.default("sampler")),
        bind=BIND,
        help="dpm2m (default): second-order exponential integrator in each component's "
        "log-SNR, deterministic, 1 evaluation per step, fewest evaluations for 2 % accuracy; "
        "ddim: its first-order version; ancestral: exact Gaussian step given x̂₀; "
        "corrected ancestral: puts back the posterior variance; Euler–Maruyama: the reverse "
        "SDE; Heun: the probability-flow ODE, 2 evaluations per step.",
    )


def steps_input(prefix: str = "") -> int:
    lo, hi = STEPS_RANGE
    return int(
        st.number_input(
            "Steps",
            min_value=0,
            max_value=100_000,
            value=state.default("steps"),
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
            value=state.default(key),
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
        state.SOFT_TEXT,
        default=list(state.SWEEP_DEFAULT),
        key="sweep",
        bind=BIND,
        disabled=disabled,
        help="Shown from diffusion (left) to autoregressive (right).",
    )
    return tuple(sorted((float(s) for s in chosen), reverse=True))


def mode_input() -> str:
    """Sampling page: one run, or a sweep over softness values with one seed."""
    return st.radio(
        "Mode",
        state.SAMPLING_MODES,
        key="mode",
        horizontal=True,
        bind=BIND,
        help="single: one run; sweep: the same noise seed at several softness values, "
        "side by side.",
    )


def time_limit_input() -> float | None:
    """The user's time limit in seconds, or None (empty: automatic, from the estimate)."""
    value = st.number_input(
        "Time limit (s)",
        min_value=0.05,
        max_value=3600.0,
        value=state.default("tlimit"),
        step=10.0,
        key="tlimit",
        bind=BIND,
        placeholder="auto",
        help="A run still going after this long stops by itself, keeping what it has, "
        "labelled unfinished. Empty (auto): 3 × the estimate shown before Run, at least "
        "120 s.",
    )
    return None if value is None else float(value)


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
        cache.dataset(data)
    except ValueError as err:
        return f"Data: {err}"
    n_items = denoiser_choice.empirical_items(data) if kind == "empirical" else 0
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


def check_sweep(spec: ProcessSpec, softnesses: tuple[float, ...]) -> str | None:
    if spec.schedule.scalar:
        return (
            "The sweep varies the softness, which belongs to the soft-conditioning "
            "schedule: pick schedule family **soft**."
        )
    if not softnesses:
        return "Pick at least one softness value to sweep."
    return None


def check_sampling(
    spec: ProcessSpec, kind: str, steps: int, batch: int, softnesses: tuple[float, ...] | None
) -> str | None:
    """The Sampling page's checks in order, the first problem only (`softnesses` None: a
    single run); the memory check comes last, as it may load the data."""
    problem = widgets.check_process(spec) or check_steps(steps)
    if not problem and softnesses is not None:
        problem = check_sweep(spec, softnesses)
    n_runs = len(softnesses) if softnesses is not None else 1
    return problem or check_batch(batch, spec.data, kind, n_runs)


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
            if method in ("ancestral", "euler_maruyama")
            else " Below it the step can be unstable or inaccurate; the variance check "
            "below says how far off."
        )
        st.warning(
            f"{steps} steps is below the {need:,} this schedule needs.{extra} Raise the "
            "steps or the softness."
        )
    return stiff


def terminal_note(spec: ProcessSpec, process, kind: str) -> None:
    """The prior term L_T of the process the run uses (ui.prior_term); for a network, also say
    when the γ̃ targets leave the range it was trained on."""
    trained = denoiser_choice.network_settings(kind) if kind.startswith("network:") else {}
    gn = getattr(process.schedule, "gamma_noise", None)
    sch = spec.schedule
    if trained and ((gn is not None and gn > trained["gn"]) or sch.gamma_denoise < trained["gd"]):
        st.warning(
            f"This network was trained with γ̃_d = {trained['gd']:g} and γ̃_n = "
            f"{trained['gn']:g}: noisier or cleaner ends than these are outside what it has "
            "seen, and its samples degrade (badly at finite softness). Train one with "
            "`--gamma-noise` for a noisier end."
        )
    prior_term.note(spec, process, key=kind)


def use_check_settings(steps_needed: int) -> None:
    """on_click: settings under which the Gaussian-field check is exact up to Monte-Carlo
    error: the process fully noised at t = 1 (γ̃_n auto: L_T <= 0.1 nat), the fast-converging
    ODE sampler with enough steps, and 128 samples."""
    st.session_state["gnauto"] = True
    st.session_state["sampler"] = "heun_ode"
    st.session_state["steps"] = int(min(STEPS_RANGE[1], max(100, steps_needed)))
    st.session_state["batch"] = 128
