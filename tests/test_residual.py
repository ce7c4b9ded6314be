"""GaussianResidualDenoiser: the low-rank Gaussian part against the exact GaussianDenoiser, the
zero residual at init and its first step, known components, sampling, bad input."""

import math

import pytest
import torch

from rgdiff_core.accuracy import gaussian_of, sampled_gaussian
from rgdiff_core.bases import make_basis
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers.analytic import GaussianDenoiser
from rgdiff_core.denoisers.models import UNetConfig
from rgdiff_core.denoisers.network import GammaConditionedNet
from rgdiff_core.denoisers.residual import GaussianResidualDenoiser, low_rank_gaussian
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import sample
from rgdiff_core.schedules import order_labels, soft_conditioning_schedule

SIZE = 8
TINY = UNetConfig(
    in_channels=2, out_channels=1, channels=16, channel_mult=(1, 2), num_res_blocks=1, cond_dim=32
)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def build(basis="dct", softness=1.0):
    data = load_dataset("digits", SIZE, "train")
    b = make_basis(basis, (1, SIZE, SIZE))
    p = make_prior("data", b, data=data)
    lam = b.encode(data).var(0).double().clamp_min(1e-6)
    labels = order_labels("variance", b, variances=lam)
    sched = soft_conditioning_schedule(
        labels, softness, variances=lam / p.std.double() ** 2, clip=True
    )
    process = Process(b, p, sched)
    return process, GaussianDenoiser.fit(process, data), data


def masks(dim):
    gen = torch.Generator().manual_seed(1)
    return [None, torch.arange(dim) < dim // 2, torch.rand(dim, generator=gen) < 0.3]


def randomise(den, seed=0):
    """Make the zero-initialised layers random too, so the residual is not 0."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in den.model.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    return den.eval()


# ---------------------------------------------------------------- the Gaussian part


@pytest.mark.parametrize("basis", ["dct", "pixel"])
@pytest.mark.parametrize("softness", [math.inf, 1.0, 0.1])
def test_full_rank_equals_gaussian_denoiser(basis, softness):
    process, exact, _ = build(basis, softness)
    den = GaussianResidualDenoiser(process, exact, config=TINY, rank=process.dim)
    gen = torch.Generator().manual_seed(0)
    for mask in masks(process.dim):
        for t in (0.02, 0.3, 0.6, 0.97):
            z = torch.randn(8, process.dim, generator=gen, dtype=torch.float64)
            state = process.noise_state(t, known=mask, like=z)
            torch.testing.assert_close(
                den(z, t, state=state), exact(z, t, state=state), atol=1e-5, rtol=0
            )
    # per-example noise states (a training batch): one solve per row
    z = torch.randn(6, process.dim, generator=gen, dtype=torch.float64)
    state = process.noise_state(torch.linspace(0.05, 0.95, 6, dtype=torch.float64), like=z)
    torch.testing.assert_close(
        den(z, 0.0, state=state), exact(z, 0.0, state=state), atol=1e-5, rtol=0
    )


def test_low_rank_keeps_the_diagonal_and_improves_with_rank():
    process, exact, _ = build("dct", 1.0)
    sigma = exact.sigma_u.double().cpu()
    for rank in (1, 8, 63):
        _, factor, d = low_rank_gaussian(process, exact, rank)
        assert factor.shape == (process.dim, rank) and bool((d >= 0).all())
        torch.testing.assert_close(d + (factor**2).sum(1), sigma.diagonal(), atol=1e-12, rtol=1e-12)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(64, process.dim, generator=gen, dtype=torch.float64)
    errors = []
    for rank in (2, 8, 24, 48, process.dim):
        den = GaussianResidualDenoiser(process, exact, config=TINY, rank=rank)
        err = 0.0
        for t in (0.2, 0.5, 0.8):
            state = process.noise_state(t, like=z)
            with torch.no_grad():
                err += float(((den(z, t, state=state) - exact(z, t, state=state)) ** 2).mean())
        errors.append(err)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-12


def test_diagonal_gaussian_is_elementwise():
    process, _, _ = build("dct", 1.0)
    var = torch.linspace(0.1, 2.0, process.dim, dtype=torch.float64)
    mean = torch.linspace(-0.5, 0.5, process.dim, dtype=torch.float64)
    den = GaussianResidualDenoiser(process, (mean, var), config=TINY)
    assert den.rank == 0
    z = torch.randn(4, process.dim, dtype=torch.float64)
    state = process.noise_state(0.4, like=z)
    a_sq, s_sq = torch.sigmoid(-state.gamma), torch.sigmoid(state.gamma)
    gain = var * a_sq.sqrt() / (a_sq * var + s_sq)
    torch.testing.assert_close(den(z, 0.4, state=state), mean + gain * (z - a_sq.sqrt() * mean))


# ---------------------------------------------------------------- the residual


def test_untrained_is_the_gaussian_and_one_step_changes_it():
    process, exact, data = build("dct", 1.0)
    torch.manual_seed(0)
    den = GaussianResidualDenoiser(process, data, config=TINY, rank=16)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(16, process.dim, generator=gen)
    state = process.noise_state(0.5, like=z)
    with torch.no_grad():
        before = den(z, 0.5, state=state)
    assert torch.equal(before, den.gaussian_x0(z, state.gamma))
    # a trainer's batch: per-example t, the velocity target, v-MSE through predict_v
    u = process.encode(data[:32])
    t = torch.rand(32, generator=gen)
    st = process.noise_state(t, like=u)
    eps = torch.randn(u.shape, generator=gen)
    zt, v = st.alpha * u + st.sigma * eps, st.alpha * eps - st.sigma * u
    v_hat = den.predict_v(zt, st.gamma)
    # v_hat and x0_hat agree: x0_hat = alpha z - sigma v_hat
    torch.testing.assert_close(
        st.alpha * zt - st.sigma * v_hat, den(zt, 0.0, state=st), atol=1e-5, rtol=1e-5
    )
    opt = torch.optim.Adam(den.model.parameters(), lr=1e-3)
    loss = ((v_hat - v) ** 2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = den(z, 0.5, state=state)
    assert float((after - before).abs().max()) > 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_known_components_come_back_bit_for_bit(dtype):
    process, exact, _ = build("pixel", 1.0)
    den = randomise(GaussianResidualDenoiser(process, exact, config=TINY, rank=8))
    gen = torch.Generator().manual_seed(0)
    for mask in masks(process.dim)[1:]:
        z = torch.randn(5, process.dim, generator=gen, dtype=dtype)
        state = process.noise_state(0.7, known=mask, like=z)
        with torch.no_grad():
            out = den(z, 0.7, state=state)
            assert out.dtype == dtype and torch.isfinite(out).all()
            assert torch.equal(out[:, mask], z[:, mask])
            assert float((out - den.gaussian_x0(z, state.gamma)).abs().max()) > 0


def test_gamma_image_optional():
    process, exact, _ = build("dct", 1.0)
    plain = UNetConfig(channels=16, channel_mult=(1, 2), num_res_blocks=1, cond_dim=32)
    den = randomise(GaussianResidualDenoiser(process, exact, config=plain, rank=4))
    assert not den.gamma_image
    with torch.no_grad():
        assert den(torch.randn(3, process.dim), 0.5).shape == (3, process.dim)
    assert GaussianResidualDenoiser(process, exact, rank=4).gamma_image  # the default


# ---------------------------------------------------------------- sampling


def test_untrained_samples_the_gaussian():
    process, exact, _ = build("dct", 1.0)
    den = GaussianResidualDenoiser(process, exact, config=TINY, rank=process.dim)
    n, steps = 512, 12
    x_res = sample(process, den, n, steps, generator=torch.Generator().manual_seed(3))
    x_exact = sample(process, exact, n, steps, generator=torch.Generator().manual_seed(3))
    var_res = float(x_res.flatten(1).double().var(0).sum())
    var_exact = float(x_exact.flatten(1).double().var(0).sum())
    # same seed, same denoiser up to float rounding
    assert abs(var_res / var_exact - 1) < 1e-3
    # and both within Monte-Carlo error of what the sampler makes of the Gaussian, exactly
    g = sampled_gaussian(process, gaussian_of(process, exact), steps)
    s = process.prior.std.double()
    cov = s[:, None] * g.cov * s[None, :]  # image-space covariance (orthonormal basis)
    total = float(cov.diagonal().sum())
    mc = 4 * math.sqrt(2 * float((cov * cov).sum()) / (n - 1))
    assert abs(var_res - total) < mc, (var_res, total, mc)


# ---------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    process, exact, _ = build("dct", 1.0)
    for rank in (0, -3, 1.5, True, "8"):
        with pytest.raises(ValueError, match="rank"):
            GaussianResidualDenoiser(process, exact, config=TINY, rank=rank)
    with pytest.raises(ValueError, match="gaussian"):
        GaussianResidualDenoiser(process, (torch.zeros(3), torch.ones(3)), config=TINY)
    with pytest.raises(ValueError, match="gaussian"):
        GaussianResidualDenoiser(process, torch.zeros(10, 1, 4, 4), config=TINY)
    with pytest.raises(ValueError, match="config"):
        GaussianResidualDenoiser(process, exact, config={"channels": 16})
    with pytest.raises(ValueError, match="model"):
        GaussianResidualDenoiser(process, exact, model=GammaConditionedNet(TINY, 16))
    with pytest.raises(ValueError, match="model"):
        wrong = UNetConfig(in_channels=3, channels=16, channel_mult=(1, 2), cond_dim=32)
        GaussianResidualDenoiser(process, exact, model=GammaConditionedNet(wrong, process.dim))
    den = GaussianResidualDenoiser(process, exact, config=TINY, rank=4)
    with pytest.raises(ValueError, match="z must"):
        den(torch.zeros(2, process.dim + 1), 0.5)
    with pytest.raises(ValueError, match="z must"):
        den(torch.zeros(process.dim), 0.5)
    with pytest.raises(ValueError, match="gamma"):
        den.gaussian_x0(torch.zeros(3, process.dim), torch.zeros(2, process.dim))
