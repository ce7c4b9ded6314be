"""What the chosen sampler and step count make of the data, before Run (docs/maths.md §2d).

The advisor (rgdiff_core.accuracy) propagates the Gaussian with the data's component means and
variances exactly through the discrete sampler: the sampled / true total variance it predicts,
and the smallest step count within STEPS_TOL of 1. It treats the whitened components as
independent (the diagonal route, O(D) per step, so it answers while the page is drawn): exact
for data with that diagonal covariance, a guide for the rest, which the exact Gaussian denoiser
of the fitted covariance reproduces within a few per cent in the bench (bench/bench_accuracy.py).
"""

from __future__ import annotations

import math

import streamlit as st

from rgdiff_core.accuracy import accuracy, steps_for_accuracy
from rgdiff_core.specs import ProcessSpec
from ui import cache

STEPS_TOL = 0.02  # the total variance ratio within 2 % of 1
ADVICE_TOL = 0.015  # what the advice aims at (advised_steps)
MAX_ADVISED = 1000  # the Sampling page's largest step count
WHY = {  # what makes each sampler's variance drift at too few steps (docs/maths.md §2d)
    "ancestral": "the plug-in step drops the posterior variance, O(h·dγ/dt)",
    "euler_maruyama": "the Euler step of the reverse SDE, first order in h",
    "heun_ode": "the second-order ODE step's error, O(h²)",
    "ddim": "the first-order exponential-integrator step, O(h)",
    "dpm2m": "the second-order multistep step's error, O(h²)",
}


def _gaussian(spec: ProcessSpec, process):
    """Whitened means and variances (D,) of the data's components under the process's prior."""
    stats = cache.stats(spec.data, spec.basis, spec.prior)
    m, s = process.prior.mean.double().cpu(), process.prior.std.double().cpu()
    return (stats.mean - m) / s, stats.var / s**2


def advised_steps(process, gaussian, method: str) -> int | None:
    """Steps for STEPS_TOL with `method` (None: more than MAX_ADVISED). The independent-
    components route is aimed at ADVICE_TOL where that fits in MAX_ADVISED: a margin for
    correlated data, where at the STEPS_TOL count the exact ratio ends up to 0.1 % short."""
    for tol in (ADVICE_TOL, STEPS_TOL):
        try:
            return steps_for_accuracy(
                process, gaussian, method=method, tol=tol, max_steps=MAX_ADVISED
            )
        except ValueError:
            continue
    return None


def needed(spec: ProcessSpec, key: str, method: str, process) -> int | None:
    """advised_steps for the data of `spec`; `key` names the process (the controls' or a
    network's). One answer for every seed (cache.seedless)."""
    return _needed(cache.seedless(spec), key, method, process)


@st.cache_resource(max_entries=128, show_spinner="Checking the step count…")
def _needed(spec: ProcessSpec, key: str, method: str, _process) -> int | None:
    return advised_steps(_process, _gaussian(spec, _process), method)


def ratio(spec: ProcessSpec, key: str, method: str, steps: int, process) -> float:
    """The predicted sampled / true total variance at `steps` (one answer for every seed)."""
    return _ratio(cache.seedless(spec), key, method, steps, process)


@st.cache_resource(max_entries=256, show_spinner=False)
def _ratio(spec: ProcessSpec, key: str, method: str, steps: int, _process) -> float:
    return accuracy(_process, _gaussian(spec, _process), steps, method).variance_ratio


def note(spec: ProcessSpec, process, key: str, method: str, steps: int, label: str = "") -> None:
    """The predicted variance ratio at these steps, and what to change when it is off by more
    than STEPS_TOL (with a button that sets the advised step count)."""
    r = ratio(spec, key, method, steps, process)
    need = needed(spec, key, method, process)
    head = f"{label}Expected variance ratio at {steps:,} steps: **{r:.3f}**"
    if method == "ancestral_corrected":
        # exact for independent components, so the diagonal route is no guide here: on
        # correlated data (digits in DCT) it needs 350-530 steps for 2 % (bench_accuracy)
        st.caption(
            f"{head} if the components were independent, where the corrected step is exact at "
            "any step count. The data's components are correlated, and then it still loses "
            "variance: bench/results/accuracy.md measures 350–530 steps for 2 % on digits."
        )
        return
    if math.isfinite(r) and abs(r - 1) <= STEPS_TOL:
        st.caption(
            f"{head} (sampled / true total variance of the data's Gaussian, exact for this "
            f"sampler; within {STEPS_TOL:.0%} from {need:,} steps)."
            if need
            else f"{head}."
        )
        return
    lost = "lose" if r < 1 else "gain"
    size = f"{abs(1 - r):.0%}" if math.isfinite(r) else "all"
    if need is None:
        st.warning(
            f"{head}: samples {lost} {size} of their variance, and {method} needs more than "
            f"{MAX_ADVISED:,} steps for {STEPS_TOL:.0%}. Pick the corrected ancestral sampler "
            "(exact for this Gaussian at any step count) or raise the softness."
        )
        return
    why = WHY.get(method, "the discretisation error of the step, O(h·dγ/dt)")
    st.warning(
        f"{head}: samples {lost} {size} of their variance ({why}); {need:,} steps are within "
        f"{STEPS_TOL:.0%}."
    )
    st.button(
        f"Use {need:,} steps",
        key=f"{label}use_steps",
        on_click=_set_steps,
        args=("b_steps" if label.startswith("B") else "steps", need),
    )


def _set_steps(key: str, steps: int) -> None:
    st.session_state[key] = int(max(steps, 10))


def sweep_notes(spec: ProcessSpec, kind: str, method: str, steps: int, softnesses) -> None:
    """The single run's checks for every softness of a sweep: the prior term and the expected
    variance ratio, one warning naming the softness values that fail."""
    from dataclasses import replace

    from rgdiff_core.terminal import L_T_TARGET
    from ui import denoiser_choice, prior_term, state

    far, off = [], []
    for s in softnesses:
        sub = replace(spec, schedule=replace(spec.schedule, softness=float(s)))
        try:
            process = denoiser_choice.process_for(sub, kind)
        except ValueError:
            continue  # the run itself will say why
        text = state.format_softness(s)
        lt = prior_term.value(sub, process, key=kind)
        if lt > L_T_TARGET:
            far.append(f"s = {text}: L_T = {lt:.3g} nat")
        r = ratio(sub, kind, method, steps, process)
        if not (math.isfinite(r) and abs(r - 1) <= STEPS_TOL):
            need = needed(sub, kind, method, process)
            off.append(f"s = {text}: {r:.3f}" + (f" ({need:,} steps needed)" if need else ""))
    if far:
        st.warning(
            "The process does not reach its prior at t = 1 (prior term above "
            f"{L_T_TARGET:g} nat) for " + "; ".join(far) + ". Tick **γ̃_n auto** or raise γ̃_n."
        )
    if off:
        st.warning(
            f"Expected variance ratio at {steps:,} steps off by more than {STEPS_TOL:.0%}: "
            + "; ".join(off)
            + ". More autoregressive schedules need more steps."
        )
    if not far and not off:
        st.caption(
            f"Every softness of the sweep reaches its prior (L_T ≤ {L_T_TARGET:g} nat) and is "
            f"within {STEPS_TOL:.0%} of the data's variance at {steps:,} steps."
        )
