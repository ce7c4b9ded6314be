"""The end of the process at t = 1, shown on every page that has a process: the prior term
L_T (rgdiff_core.terminal) with one plain sentence of what it means, and what to change when
it is above the 0.1 nat bound (docs/maths.md §2b)."""

from __future__ import annotations

import streamlit as st
import torch

from rgdiff_core.specs import ProcessSpec
from rgdiff_core.terminal import L_T_TARGET, prior_term, prior_term_from_moments
from ui import cache


@st.cache_resource(max_entries=32, show_spinner="Measuring the prior term…")
def _prior_term(spec: ProcessSpec, key: str, _process) -> float:
    # `key` names the process (the controls' own, or a network's): _process is not hashed.
    # A network's prior was fitted by its training run, so its data are encoded again; any
    # other process has the controls' basis and prior, whose E[u^2] the statistics hold.
    if key.startswith("network:"):
        return prior_term(_process, cache.dataset(spec.data))
    u_sq = cache.stats(spec.data, spec.basis, spec.prior).u_sq
    gamma_1 = _process.noise_state(1.0, like=torch.zeros(1, dtype=torch.float64)).gamma
    return prior_term_from_moments(gamma_1.cpu().reshape(-1), u_sq)


def value(spec: ProcessSpec, process=None, key: str = "") -> float:
    """L_T in nats per image of `process` (default: the controls' own) on the training split."""
    process = cache.process(spec) if process is None else process
    return _prior_term(cache.seedless(spec), key, process)


def gamma_noise_text(spec: ProcessSpec, process, network: bool = False) -> str:
    """The noised-end target in use, e.g. 'γ̃_n = 8.58 (auto)'; '' for scalar schedules."""
    g = getattr(process.schedule, "gamma_noise", None)
    if spec.schedule.scalar or g is None:
        return ""
    if spec.schedule.gamma_noise is None:
        return f"γ̃_n = {g:.2f}" + (" (the network's trained value)" if network else " (auto)")
    return f"γ̃_n = {g:.2f}"


def note(spec: ProcessSpec, process=None, key: str = "", label: str = "") -> float:
    """Show L_T: a caption when the process reaches its prior, a warning saying what to change
    when it does not. Returns L_T."""
    process = cache.process(spec) if process is None else process
    lt = value(spec, process, key)
    network = key.startswith("network:")
    gn = gamma_noise_text(spec, process, network)
    head = f"{label}Prior term L_T = {lt:.3g} nat/image" + (f" at {gn}" if gn else "")
    if lt <= L_T_TARGET:
        st.caption(
            f"{head}: at t = 1 the noised data are this close (KL divergence) to the N(0, I) "
            f"that sampling starts from; at most {L_T_TARGET:g} nat means the process ends "
            "where the sampler begins."
        )
        return lt
    if network:
        fix = (
            "use a network trained with a larger γ̃_n (`--gamma-noise`); sampling it past the "
            "target it was trained for leaves its training range"
        )
    elif spec.schedule.scalar:
        fix = "raise the noised end of the schedule (γ at t = 1, or β_max)"
    else:
        fix = "tick **γ̃_n auto** or raise γ̃_n"
    st.warning(
        f"{head}: the process does not reach its prior at t = 1 (the bound is "
        f"{L_T_TARGET:g} nat), so sampling starts from the wrong distribution and the samples "
        f"are biased (too little of the signal the data keep at t = 1). To fix it, {fix}."
    )
    return lt
