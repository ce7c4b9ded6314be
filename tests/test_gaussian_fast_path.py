"""The exact Gaussian denoiser's elementwise route (whitened covariance diagonal) against its
matrix routes and the closed form mu + Sigma A (A Sigma A + diag sigma^2)^-1 (z - A mu); and
the sampler steps that were rewritten for speed against the formulas they stand for."""

import pytest
import torch

from rgdiff_core.bases import make_basis
from rgdiff_core.conversions import reverse_sde_drift
from rgdiff_core.data import gaussian_field_covariance
from rgdiff_core.denoisers import GaussianDenoiser, component_covariance
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import (
    SAMPLERS,
    SamplingDiverged,
    _all_finite,
    _grid_states,
    sample_latents,
)
from rgdiff_core.schedules import (
    cosine_schedule,
    linear_schedule,
    order_labels,
    soft_conditioning_schedule,
    vp_schedule,
)

SIZE = 8
D = SIZE * SIZE
SHAPE = (1, SIZE, SIZE)
COV = gaussian_field_covariance(SIZE, exponent=3.0, mass=1.0)
MEAN = 0.3 * torch.cos(torch.arange(D, dtype=torch.float64))  # nonzero: offset is exercised
TIMES = [0.0, 1e-3, 0.3, 0.7, 0.999, 1.0]


def fourier_process(schedule="soft"):
    """Fourier basis, power-law prior std (not the data's), per-component or scalar gamma."""
    basis = make_basis("fourier", SHAPE)
    power = 1.0 / ((basis.frequencies().double() ** 2).sum(-1) + 1.0)
    prior = make_prior("explicit", basis, std=power.sqrt())
    sched = (
        soft_conditioning_schedule(-power.log(), 0.5)
        if schedule == "soft"
        else linear_schedule(-9.0, 6.0)
    )
    return Process(basis, prior, sched)


def closed_form(process, z, state, cov=COV, mean=MEAN, jitter=1e-6):
    """E[u | z] by a dense float64 solve, one example at a time, from the data-space covariance
    (independent of the denoiser's set-up and routes)."""
    s = process.prior.std.double()
    sigma = component_covariance(process.basis, cov) / s[:, None] / s[None, :]
    sigma = sigma + jitter * sigma.diagonal().mean() * torch.eye(D, dtype=torch.float64)
    mu = (process.basis.encode(mean.reshape(1, *SHAPE))[0] - process.prior.mean.double()) / s
    gamma = state.gamma.double().expand(z.shape[0], D)
    out = []
    for g, zi in zip(gamma, z.double(), strict=True):
        a, s2 = torch.sigmoid(-g).sqrt(), torch.sigmoid(g)
        m = a[:, None] * sigma * a[None, :] + torch.diag(s2)
        out.append(mu + sigma @ (a * torch.linalg.solve(m, zi - a * mu)))
    return torch.stack(out)


@pytest.mark.parametrize("schedule", ["soft", "scalar"])
def test_elementwise_route_equals_the_matrix_routes(schedule):
    """(a) Same x0_hat from the diagonal route and the forced dense route (Cholesky for
    per-component gamma, eigen for a scalar one) and the closed form, over t from 0 to 1,
    with known components and with one t per example."""
    process = fourier_process(schedule)
    fast = GaussianDenoiser(process, MEAN, COV)
    dense = GaussianDenoiser(process, MEAN, COV, dense=True)
    assert fast.diagonal and not dense.diagonal
    z = 1.5 * torch.randn(6, D, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(D, dtype=torch.bool)
    mask[::5] = True
    for t in TIMES:
        for known in (None, mask):
            state = process.noise_state(t, known=known, like=z)
            got, ref = fast(z, t, state=state), dense(z, t, state=state)
            assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5), (t, known)
            exact = closed_form(process, z, state).float()
            assert torch.allclose(got, exact, rtol=1e-5, atol=1e-5), (t, known)
            if known is not None:  # a known component is returned as given
                assert torch.allclose(got[:, mask], z[:, mask], atol=1e-6)
    per_example = torch.tensor(TIMES)
    state = process.noise_state(per_example, like=z)
    assert torch.allclose(fast(z, per_example), dense(z, per_example), rtol=1e-5, atol=1e-5)
    assert torch.allclose(
        fast(z, per_example), closed_form(process, z, state).float(), rtol=1e-5, atol=1e-5
    )


def test_elementwise_route_keeps_float64():
    process = fourier_process()
    fast = GaussianDenoiser(process, MEAN, COV)
    dense = GaussianDenoiser(process, MEAN, COV, dense=True)
    z = torch.randn(3, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = fast(z, 0.4)
    assert out.dtype == torch.float64
    assert torch.allclose(out, dense(z, 0.4), rtol=1e-10, atol=1e-10)


def test_correlated_components_take_the_matrix_route():
    """(b) Pixel basis, stationary field: correlated components, dense route, still exact."""
    basis = make_basis("pixel", SHAPE)
    process = Process(
        basis,
        make_prior("white", basis),
        soft_conditioning_schedule(order_labels("raster", basis), 0.5),
    )
    den = GaussianDenoiser(process, MEAN, COV)
    assert not den.diagonal
    assert den.sigma_u.shape == (D, D)
    z = torch.randn(4, D, generator=torch.Generator().manual_seed(2))
    for t in (0.05, 0.5, 0.95):
        state = process.noise_state(t, like=z)
        assert torch.allclose(
            den(z, t), closed_form(process, z, state).float(), rtol=1e-5, atol=1e-5
        )


def test_fourier_and_stationary_field_take_the_elementwise_route():
    """(c) A periodic stationary field is diagonal in the Fourier basis: only the D variances
    are kept, no D x D matrix; a slight correlation sends it back to the matrix route."""
    process = fourier_process()
    den = GaussianDenoiser(process, torch.zeros(D), COV)
    assert den.diagonal
    assert all(b.numel() == D for _, b in den.named_buffers(recurse=False))
    tilted = COV + 1e-3 * torch.roll(torch.eye(D, dtype=torch.float64), 1, 0)
    tilted = 0.5 * (tilted + tilted.T)
    assert not GaussianDenoiser(process, torch.zeros(D), tilted).diagonal
    with pytest.raises(ValueError, match="dense"):
        GaussianDenoiser(process, torch.zeros(D), COV, dense="yes")


# ---------------------------------------------------------------- the sampler's fast steps


def test_euler_maruyama_step_is_the_reverse_sde_drift():
    """z - h reverse_sde_drift + sqrt(h beta) eps (conversions), frozen components held."""
    basis = make_basis("fourier", SHAPE)
    sched = soft_conditioning_schedule(order_labels("scale", basis), 0.3, clip=True)
    process = Process(basis, make_prior("white", basis), sched)
    mask = torch.zeros(D, dtype=torch.bool)
    mask[3] = True
    z = torch.randn(5, D, generator=torch.Generator().manual_seed(3))
    x0_hat = torch.randn(5, D, generator=torch.Generator().manual_seed(4))
    for t, known in [(0.5, None), (0.5, mask), (0.97, None), (0.02, mask)]:
        h = 0.01
        st_t = process.noise_state(t, known=known, like=z)
        st_s = process.noise_state(t - h, known=known, like=z)
        eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(5))
        ref = z - h * reverse_sde_drift(z, x0_hat, st_t) + (h * st_t.beta).sqrt() * eps
        got = SAMPLERS["euler_maruyama"](z, x0_hat, st_t, st_s, h, torch.Generator().manual_seed(5))
        assert torch.allclose(got, ref, rtol=1e-6, atol=1e-6)
        frozen = st_t.frozen.expand_as(z)
        assert frozen.any() and (~frozen).any()
        assert torch.equal(got[frozen], z[frozen])
        # held, not recomputed: a frozen component keeps its bits whatever x0_hat says there
        poisoned = torch.where(frozen, torch.nan, x0_hat)
        got = SAMPLERS["euler_maruyama"](z, poisoned, st_t, st_s, h, None)
        assert torch.equal(got[frozen], z[frozen]) and torch.isfinite(got).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finiteness_check_sees_every_non_finite_value(bad):
    z = torch.randn(7, D)
    assert _all_finite(z)
    z[4, 17] = bad
    assert not _all_finite(z)


GRID_SCHEDULES = {
    "soft_clip": lambda basis: soft_conditioning_schedule(
        order_labels("scale", basis), 0.3, clip=True
    ),
    "cosine": lambda basis: cosine_schedule(),
    "vp": lambda basis: vp_schedule(),
}


@pytest.mark.parametrize("name", sorted(GRID_SCHEDULES))
def test_noise_states_on_the_grid_match_one_by_one(name):
    """The sampler asks the schedule for many times at once; each state is the one a single
    call gives, bit for bit and in the same shape, with and without known components."""
    basis = make_basis("fourier", SHAPE)
    process = Process(basis, make_prior("white", basis), GRID_SCHEDULES[name](basis))
    steps = 150  # more than one chunk of the grid
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    like = torch.zeros(2, D)
    for mask in (None, torch.arange(D) % 3 == 0):
        states = list(_grid_states(process, ts, mask, like))
        assert len(states) == steps + 1
        for t, state in zip(ts.tolist(), states, strict=True):
            one = process.noise_state(t, known=mask, like=like)
            assert state.gamma.shape == one.gamma.shape
            assert torch.equal(state.gamma, one.gamma), (name, t)
            assert torch.equal(state.dgamma_dt, one.dgamma_dt), (name, t)


def test_divergence_is_still_caught():
    """A schedule far too stiff for 10 Euler-Maruyama steps overflows; the run says so."""
    basis = make_basis("fourier", SHAPE)
    sched = soft_conditioning_schedule(order_labels("scale", basis), 1e-5)
    process = Process(basis, make_prior("white", basis), sched)
    den = GaussianDenoiser(process, torch.zeros(D), COV)
    with pytest.raises(SamplingDiverged, match="steps"):
        sample_latents(
            process, den, 4, 10, method="euler_maruyama", generator=torch.Generator().manual_seed(7)
        )
