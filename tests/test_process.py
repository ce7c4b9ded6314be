"""Priors and the process: construction, whitening, validation, and no NaN/Inf anywhere for any
valid setting (hypothesis)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rgdiff_core.bases import make_basis
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.priors import component_stats, make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import SAMPLERS, sample_latents
from rgdiff_core.schedules import (
    cosine_schedule,
    linear_schedule,
    order_labels,
    soft_conditioning_schedule,
    vp_schedule,
)

DATA = load_dataset("shapes", 16)[:256]


def test_prior_kinds():
    basis = make_basis("dct", (1, 16, 16))
    mean, var = component_stats(basis, DATA)
    white = make_prior("white", basis)
    assert torch.equal(white.std, torch.ones(256)) and torch.equal(white.mean, torch.zeros(256))
    white_d = make_prior("white", basis, data=DATA)
    assert torch.allclose(white_d.mean.double(), mean, atol=1e-5)
    data = make_prior("data", basis, data=DATA)
    u = data.whiten(basis.encode(DATA)).double()
    assert torch.allclose(u.mean(0), torch.zeros(256, dtype=torch.float64), atol=1e-4)
    kept = var > 1e-3 * var.mean()  # unfloored components are exactly unit variance
    assert torch.allclose(
        u.var(0, unbiased=False)[kept], torch.ones(int(kept.sum())).double(), atol=1e-3
    )
    power = make_prior("power_law", basis, data=DATA, exponent=2.0)
    ratio = power.std**2 * (1 + basis.scale()) ** 2
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)
    assert (power.std**2).mean().item() == pytest.approx(var.mean().item(), rel=1e-4)
    explicit = make_prior("explicit", basis, std=torch.full((256,), 2.0))
    c = basis.encode(DATA)
    assert torch.allclose(explicit.unwhiten(explicit.whiten(c)), c, atol=1e-6)


@pytest.mark.parametrize(
    "kind, kwargs, name",
    [
        ("nope", {}, "kind"),
        ("data", {}, "data"),
        ("power_law", {"exponent": -1}, "exponent"),
        ("explicit", {"std": torch.ones(3)}, "std"),
        ("explicit", {"std": -torch.ones(256)}, "std"),
    ],
)
def test_invalid_priors(kind, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_prior(kind, make_basis("pixel", (1, 16, 16)), **kwargs)


def test_process_round_trip_and_validation():
    basis = make_basis("wavelet", (1, 16, 16), wavelet="db2")
    prior = make_prior("data", basis, data=DATA)
    process = Process(basis, prior, linear_schedule())
    assert torch.allclose(process.decode(process.encode(DATA)), DATA, atol=1e-5)
    with pytest.raises(ValueError, match="schedule"):
        Process(basis, prior, soft_conditioning_schedule(torch.zeros(10), 1.0))
    with pytest.raises(ValueError, match="prior"):
        Process(basis, make_prior("white", make_basis("pixel", (1, 8, 8))), linear_schedule())
    with pytest.raises(ValueError, match="n must"):
        process.sample_terminal(0)
    with pytest.raises(ValueError, match="t must"):
        process.noise_state(torch.zeros(2, 2))


def test_order_labels():
    basis = make_basis("pixel", (1, 8, 8))
    raster = order_labels("raster", basis)
    assert torch.equal(raster.argsort(), torch.arange(64))
    col = order_labels("column", basis).reshape(8, 8)
    assert torch.equal(col[0], torch.arange(8, dtype=torch.float64))
    wav = make_basis("wavelet", (1, 8, 8), wavelet="haar")
    sc = order_labels("scale_column", wav)
    assert torch.equal(sc.floor(), wav.scale().double())
    with pytest.raises(ValueError, match="order"):
        order_labels("row", make_basis("fourier", (1, 8, 8)))
    with pytest.raises(ValueError, match="variances"):
        order_labels("variance", basis)
    with pytest.raises(ValueError, match="labels"):
        order_labels("custom", basis, labels=torch.zeros(3))


BASIS_CHOICES = st.sampled_from(["pixel", "fourier", "dct", "haar", "db2", "sym3"])


@settings(max_examples=40, deadline=None)
@given(
    basis_name=BASIS_CHOICES,
    log_size=st.integers(3, 6),
    levels=st.integers(1, 6),
    softness=st.floats(1e-3, 1e3),
    g_d=st.floats(-15, 0),
    width=st.floats(1, 20),
    clip=st.booleans(),
    prior=st.sampled_from(["white", "data", "power_law"]),
    method=st.sampled_from(sorted(SAMPLERS)),
    t=st.floats(0, 1),
    scalar=st.sampled_from([None, "linear", "cosine", "vp"]),
)
def test_no_nan_in_process_and_one_step(
    basis_name, log_size, levels, softness, g_d, width, clip, prior, method, t, scalar
):
    size = 2**log_size
    opts = {}
    if basis_name in ("haar", "db2", "sym3"):
        opts = {"wavelet": basis_name, "levels": min(levels, log_size)}
        basis_name = "wavelet"
    basis = make_basis(basis_name, (1, size, size), **opts)
    data = load_dataset("shapes", size)[:64]
    prior_ = make_prior(prior, basis, data=data)
    if scalar is None:
        labels = order_labels("scale", basis)
        sched = soft_conditioning_schedule(labels, softness, g_d, g_d + width, clip=clip)
    else:
        sched = {"linear": linear_schedule, "cosine": cosine_schedule, "vp": lambda: vp_schedule()}[
            scalar
        ]()
    process = Process(basis, prior_, sched)
    gen = torch.Generator().manual_seed(0)
    u = process.encode(data[:4])
    z, eps = process.add_noise(u, t, generator=gen)
    state = process.noise_state(t)
    for value in (z, state.alpha, state.sigma, state.beta, state.gamma):
        assert torch.isfinite(value).all()
    den = EmpiricalDenoiser(process, data)
    x0 = den(z, t)
    assert torch.isfinite(x0).all()
    out = sample_latents(process, den, 2, 1, method=method, generator=gen)
    assert torch.isfinite(out).all()


def test_gaussian_denoiser_routes_agree():
    """Diagonal, shared-noise (eigen) and general (Cholesky) routes give the same answer."""
    basis = make_basis("pixel", (1, 8, 8))
    prior = make_prior("white", basis)
    cov = torch.diag(torch.linspace(0.5, 2.0, 64)).double()
    z = torch.randn(5, 64, generator=torch.Generator().manual_seed(0))
    scalar = GaussianDenoiser(Process(basis, prior, linear_schedule()), torch.zeros(64), cov)
    soft = GaussianDenoiser(
        Process(basis, prior, soft_conditioning_schedule(torch.zeros(64), math.inf)),
        torch.zeros(64),
        cov,
    )
    assert scalar.diagonal
    rot = torch.linalg.qr(
        torch.randn(64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )[0]
    dense_cov = rot @ cov @ rot.T
    dense = GaussianDenoiser(Process(basis, prior, linear_schedule()), torch.zeros(64), dense_cov)
    assert not dense.diagonal
    t = 0.4
    # a dense covariance seen through the rotation equals the diagonal one
    rot_out = dense(z @ rot.T.float(), t)
    assert torch.allclose(rot_out @ rot.float(), scalar(z, t), atol=1e-5)
    # the Cholesky route (per-component gamma) on equal gammas equals the eigen route
    state = scalar.process.noise_state(t)
    alpha = state.alpha.double().expand(64)
    sigma_sq = state.sigma_sq.double().expand(64)
    tilt = 1 + 1e-12 * torch.arange(64, dtype=torch.float64)  # unequal: forces Cholesky
    general = dense._gain(z.double(), alpha * tilt, sigma_sq)
    eigen = dense._gain(z.double(), alpha, sigma_sq)
    assert torch.allclose(general, eigen, atol=1e-9)
    assert torch.allclose(soft(z, t), soft(z, torch.tensor(t)), atol=0)
