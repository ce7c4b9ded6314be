"""docs/maths.md §6 checks 1 and 3: schedule identities, soft-conditioning facts, worked numbers."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rgdiff_core.schedules import (
    NoiseState,
    cosine_schedule,
    linear_schedule,
    schedule_from_spec,
    soft_conditioning_schedule,
    stiffness,
    vp_schedule,
)

torch.set_default_dtype(torch.float32)
LABELS = torch.tensor([0.3, -1.2, 2.5, 0.3, 1.0, -0.4], dtype=torch.float64)
VARS = torch.tensor([2.0, 0.5, 1.3, 0.01, 4.0, 1.0], dtype=torch.float64)

SCHEDULES = {
    "linear": lambda: linear_schedule(-8.0, 9.0),
    "cosine": lambda: cosine_schedule(),
    "vp": lambda: vp_schedule(),
    "soft": lambda: soft_conditioning_schedule(LABELS, 0.7, variances=VARS),
    "soft_clip": lambda: soft_conditioning_schedule(LABELS, 0.2, variances=VARS, clip=True),
    "soft_inf": lambda: soft_conditioning_schedule(LABELS, math.inf, clip=True),
}


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request):
    return SCHEDULES[request.param]()


T = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)


def test_alpha_sigma_identities(schedule):
    state = schedule(T)
    assert torch.allclose(state.alpha_sq + state.sigma_sq, torch.ones(()).double(), atol=1e-12)
    assert torch.allclose(state.alpha**2, state.alpha_sq, atol=1e-12)
    # gamma <-> sigma^2 round trip
    assert torch.allclose(torch.logit(state.sigma_sq), state.gamma, atol=1e-6, rtol=1e-9)
    assert torch.allclose(state.snr, state.alpha_sq / state.sigma_sq, rtol=1e-9)


def test_gamma_increasing(schedule):
    g = schedule(T).gamma
    assert (g.diff(dim=0) >= 0).all()


def test_dgamma_matches_autograd(schedule):
    # points avoid the clip kinks, where autograd picks a one-sided value
    t = torch.linspace(0.003, 0.997, 97, dtype=torch.float64).requires_grad_(True)
    g = schedule.gamma(t)
    grad = torch.autograd.grad(g.sum(), t)[0] if g.ndim == 1 else None
    closed = schedule.dgamma_dt(t.detach())
    if g.ndim == 1:
        assert torch.allclose(grad, closed, rtol=1e-6, atol=1e-8)
    else:  # per component: one column at a time
        for i in range(g.shape[1]):
            gi = torch.autograd.grad(g[:, i].sum(), t, retain_graph=True)[0]
            assert torch.allclose(gi, closed[:, i], rtol=1e-6, atol=1e-8)


def test_beta_zero_where_clipped():
    sched = SCHEDULES["soft_clip"]()
    state = sched(T)
    g = state.gamma
    lower, upper = sched.lower, sched.upper
    clipped = (g <= lower) | (g >= upper)
    assert clipped.any() and (~clipped).any()
    assert (state.beta[clipped] == 0).all()
    assert (state.dgamma_dt[clipped] == 0).all()
    assert (state.beta[~clipped] > 0).all()


def test_known_components_have_zero_beta():
    state = NoiseState(torch.tensor([-math.inf, 0.0]), torch.tensor([0.0, 2.0]))
    assert state.beta.tolist() == [0.0, 1.0]
    assert state.alpha_sq[0] == 1 and state.sigma_sq[0] == 0


@pytest.mark.parametrize("softness", [0.05, 0.3, 1.0, 7.0, math.inf])
@pytest.mark.parametrize("clip", [False, True])
def test_soft_conditioning_boundaries(softness, clip):
    g_d, g_n = -6.5, 2.5
    sched = soft_conditioning_schedule(LABELS, softness, g_d, g_n, variances=VARS, clip=clip)
    eff0 = sched.gamma(torch.tensor(0.0, dtype=torch.float64)) - VARS.log()
    eff1 = sched.gamma(torch.tensor(1.0, dtype=torch.float64)) - VARS.log()
    hi, lo = LABELS.argmax(), LABELS.argmin()
    assert eff0[hi].item() == pytest.approx(g_d, abs=1e-12)
    assert eff1[lo].item() == pytest.approx(g_n, abs=1e-12)
    # one slope shared by all components (unclipped)
    slopes = sched.dgamma_dt(torch.tensor(0.5, dtype=torch.float64))
    if not clip:
        assert torch.all(slopes == slopes[0])
    if clip:  # effective -log SNR >= g_d; raw gamma <= g_n + max(log v, 0) (docs/maths.md §2b)
        raw = sched.gamma(T)
        assert (raw - VARS.log()).min() >= g_d - 1e-12
        assert (raw <= g_n + VARS.log().clamp_min(0) + 1e-12).all()
        # where v < 1 the clip lets gamma pass g_n + log v on its way to raw g_n (sigma^2 ~ 1)
        small = VARS < 1
        if math.isfinite(softness):
            assert (raw[-1, small] > g_n + VARS.log()[small] + 1e-9).any()


def test_worked_numbers_white_prior():
    lam = torch.tensor([4.0, 1.0, 0.25, 0.0625], dtype=torch.float64)
    sched = soft_conditioning_schedule(-lam.log(), 1.0, -7.0, 3.0, variances=lam)
    g0 = sched.gamma(torch.tensor(0.0, dtype=torch.float64))
    g1 = sched.gamma(torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(g0, torch.full((4,), -7 + math.log(0.0625)).double(), atol=1e-12)
    assert torch.allclose(g1, torch.full((4,), 3 + math.log(4.0)).double(), atol=1e-12)
    assert g0[0].item() == pytest.approx(-9.77, abs=5e-3)
    assert g1[0].item() == pytest.approx(4.39, abs=5e-3)


def test_worked_numbers_data_prior_equals_standard_diffusion():
    lam = torch.tensor([4.0, 1.0, 0.25, 0.0625], dtype=torch.float64)
    data_matched = soft_conditioning_schedule(-lam.log(), 1.0, -7.0, 3.0)  # v_i = 1
    g0 = data_matched.gamma(torch.tensor(0.0, dtype=torch.float64))
    assert torch.allclose(g0, torch.tensor([-11.16, -9.77, -8.39, -7.00]).double(), atol=5e-3)
    assert data_matched.delta_gamma == pytest.approx(14.16, abs=5e-3)
    # s = 1: SNR_i(t) = lambda_i exp(-gamma_std(t)), gamma_std = the white-prior scalar path
    standard = linear_schedule(-7 + math.log(0.0625), 3 + math.log(4.0))
    snr_data = torch.exp(-data_matched.gamma(T))  # v_i = 1
    snr_std = lam * torch.exp(-standard.gamma(T)).unsqueeze(-1)
    assert torch.allclose(snr_data.log(), snr_std.log(), atol=1e-12, rtol=0)


def test_infinite_softness_is_equal_snr():
    sched = soft_conditioning_schedule(LABELS, math.inf, variances=VARS)
    eff = sched.gamma(T) - VARS.log()
    assert torch.allclose(eff, eff[:, :1].expand_as(eff), atol=1e-12)


def test_small_softness_orders_generation():
    labels = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    sched = soft_conditioning_schedule(labels, 0.01, clip=True)
    t0, t1 = sched.window()
    centre = 0.5 * (t0 + t1)
    expected = (labels.max() - labels) / (labels.max() - labels.min())
    assert torch.allclose(centre, expected, atol=0.02)
    # windows shrink like s: width (g_n - g_d) / delta_gamma ~ s (g_n - g_d) / label range
    assert ((t1 - t0) <= 10.0 / sched.delta_gamma + 1e-12).all()
    assert 10.0 / sched.delta_gamma < 0.034
    # stiffer schedules need more steps
    soft = stiffness(soft_conditioning_schedule(labels, 1.0, clip=True))["steps_needed"]
    stiff = stiffness(sched)["steps_needed"]
    assert stiff > 10 * soft


def test_spec_round_trip():
    for make in SCHEDULES.values():
        sched = make()
        again = schedule_from_spec(sched.spec())
        assert torch.equal(sched.gamma(T), again.gamma(T))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"softness": 0.0}, "softness"),
        ({"softness": -1.0}, "softness"),
        ({"softness": float("nan")}, "softness"),
        ({"softness": 1.0, "gamma_noise": -8.0}, "gamma_noise"),
        ({"softness": 1.0, "gamma_denoise": float("nan")}, "gamma_denoise"),
        ({"softness": 1.0, "variances": torch.zeros(6)}, "variances"),
    ],
)
def test_invalid_soft_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        soft_conditioning_schedule(LABELS, **kwargs)


def test_invalid_scalar_settings():
    with pytest.raises(ValueError, match="gamma_max"):
        linear_schedule(3.0, -3.0)
    with pytest.raises(ValueError, match="beta_max"):
        vp_schedule(5.0, 1.0)
    with pytest.raises(ValueError, match="family"):
        schedule_from_spec({"family": "nope"})


@settings(max_examples=60, deadline=None)
@given(
    softness=st.floats(1e-3, 1e3),
    g_d=st.floats(-20, 0),
    width=st.floats(0.5, 25),
    clip=st.booleans(),
    d=st.integers(1, 64),
    seed=st.integers(0, 2**16),
    t=st.floats(0, 1),
)
def test_no_nan_anywhere(softness, g_d, width, clip, d, seed, t):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randn(d, generator=gen, dtype=torch.float64) * 3
    variances = torch.rand(d, generator=gen, dtype=torch.float64) * 10 + 1e-3
    sched = soft_conditioning_schedule(labels, softness, g_d, g_d + width, variances, clip)
    state = sched(torch.tensor([t, 0.0, 1.0], dtype=torch.float32))
    for value in (state.gamma, state.dgamma_dt, state.alpha, state.sigma, state.beta):
        assert torch.isfinite(value).all()
