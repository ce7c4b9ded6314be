"""The ends of the process (docs/maths.md §2b): the prior term L_T is the exact KL from the
data's second moments, auto γ̃_n is the smallest target meeting it, and every default and
preset of the app reaches its prior (L_T <= 0.1 nat) on every dataset."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from rgdiff_core import DATASETS, load_dataset
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
    component_statistics,
)
from rgdiff_core.terminal import (
    AUTO_TARGET,
    L_T_TARGET,
    auto_gamma_noise,
    prior_term,
)
from ui import state

DIGITS = load_dataset("digits", 16)


def spec(prior="white", basis="dct", **schedule) -> ProcessSpec:
    return ProcessSpec(
        DataSpec("digits", 16), BasisSpec(basis), PriorSpec(prior), ScheduleSpec(**schedule)
    )


@pytest.mark.parametrize("gamma_noise", [3.0, 10.0])
@pytest.mark.parametrize("clip", [False, True])
def test_prior_term_is_the_mean_kl_of_q_z1_given_x(gamma_noise, clip):
    process = build_process(spec(order="variance", gamma_noise=gamma_noise, clip=clip), DIGITS)
    u = process.encode(DIGITS).double()
    state_1 = process.noise_state(1.0, like=u)
    q = Normal(state_1.alpha * u, state_1.sigma)
    want = kl_divergence(q, Normal(torch.zeros_like(u), torch.ones_like(u))).sum(1).mean()
    assert prior_term(process, DIGITS) == pytest.approx(float(want), rel=1e-6, abs=1e-9)


def test_prior_term_of_a_scalar_schedule():
    process = build_process(spec(family="linear", gamma_min=-10.0, gamma_max=12.0), DIGITS)
    u = process.encode(DIGITS).double()
    a2 = torch.sigmoid(torch.tensor(-12.0, dtype=torch.float64))
    want = 0.5 * (a2 * (u**2).mean(0) + (1 - a2) - 1 - torch.log(1 - a2)).sum()
    assert prior_term(process, DIGITS) == pytest.approx(float(want), rel=1e-9)


@pytest.mark.parametrize("softness", [math.inf, 1.0, 0.1])
def test_auto_gamma_noise_is_the_smallest_that_meets_the_target(softness):
    process = build_process(spec(order="variance", softness=softness, clip=True), DIGITS)
    sched = process.schedule
    stats = component_statistics(process.basis, DIGITS, process.prior)
    args = (sched.labels, softness, sched.gamma_denoise, stats.v, True, stats.u_sq)
    gn = auto_gamma_noise(*args)
    assert gn == sched.gamma_noise

    def l_t(g):
        return prior_term(
            build_process(
                spec(order="variance", softness=softness, clip=True, gamma_noise=g), DIGITS
            ),
            DIGITS,
        )

    assert l_t(gn) <= AUTO_TARGET + 1e-9 < l_t(gn - 0.05)


@pytest.mark.parametrize(
    "data, match",
    [
        (DIGITS[:0], "empty"),
        (DIGITS[:, :, :8], "shape"),
        (torch.full_like(DIGITS[:2], float("nan")), "NaN"),
        ([1.0, 2.0], "shape"),
    ],
    ids=["empty", "shape", "nan", "not-a-tensor"],
)
def test_prior_term_rejects_bad_data(data, match):
    process = build_process(spec(order="variance"), DIGITS)
    with pytest.raises(ValueError, match=match) as err:
        prior_term(process, data)
    assert "data" in str(err.value)


def _app_settings() -> dict[str, dict]:
    out = {"defaults": dict(state.PROCESS_DEFAULTS), "B defaults": dict(state.B_DEFAULTS)}
    out |= {p["name"]: p["settings"] for p in state.PRESETS}
    return out


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_default_and_preset_reaches_its_prior_on_every_dataset(dataset):
    train = load_dataset(dataset, 32)
    over = {}
    for name, settings in _app_settings().items():
        process = build_process(state.process_spec(settings, DataSpec(dataset, 32)), train)
        lt = prior_term(process, train)
        if not lt <= L_T_TARGET:
            over[name] = lt
    assert not over, over
