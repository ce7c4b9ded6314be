"""The accuracy advisor (rgdiff_core.accuracy), the variance-corrected ancestral step and the
exponential integrators ddim and dpm2m (docs/maths.md §2d, §6 check 10): predictions against
Monte-Carlo sampling with the exact Gaussian denoiser, the routes against each other, the step
search, the integrators' order, frozen bits, bad input."""

import math

import pytest
import torch

from rgdiff_core.accuracy import (
    SIGNED,
    Gaussian,
    accuracies,
    accuracy,
    gaussian_of,
    sampled_gaussian,
    steps_for_accuracy,
)
from rgdiff_core.accuracy.propagate import dense_route, diagonal_route, grid_states
from rgdiff_core.bases import make_basis
from rgdiff_core.data import gaussian_field, gaussian_field_covariance, load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.samplers import SAMPLERS, nfe_count, sample_latents
from rgdiff_core.schedules import linear_schedule, order_labels, stiffness
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)

SIZE = 8
DIGITS = load_dataset("digits", SIZE)
N_MC = 3000
_CACHE: dict = {}


def digits(softness: float, gamma_noise: float = 10.0):
    """Digits 8x8, DCT, data prior, variance order, clip: (process, its exact Gaussian
    denoiser, the Gaussian) -- the bench's setting at size 8."""
    key = (softness, gamma_noise)
    if key not in _CACHE:
        spec = ProcessSpec(
            DataSpec("digits", SIZE),
            BasisSpec("dct"),
            PriorSpec("data"),
            ScheduleSpec(order="variance", softness=softness, clip=True, gamma_noise=gamma_noise),
        )
        process = build_process(spec, DIGITS)
        den = GaussianDenoiser.fit(process, DIGITS)
        _CACHE[key] = (process, den, gaussian_of(process, den))
    return _CACHE[key]


def fields_fourier(softness: float = 1.0):
    """A stationary field in the Fourier basis: Sigma is diagonal (the elementwise route)."""
    basis = make_basis("fourier", (1, SIZE, SIZE))
    cov = gaussian_field_covariance(SIZE, exponent=3.0, mass=1.0)
    data = gaussian_field(512, SIZE, exponent=3.0, mass=1.0, generator=torch.Generator())
    prior = make_prior("data", basis, data=data)
    from rgdiff_core.denoisers import component_covariance
    from rgdiff_core.schedules import soft_conditioning_schedule

    lam = component_covariance(basis, cov).diagonal()
    v = lam / prior.std.double() ** 2
    labels = order_labels("variance", basis, variances=lam)
    sched = soft_conditioning_schedule(labels, softness, -7.0, 10.0, variances=v, clip=True)
    process = Process(basis, prior, sched)
    den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), cov)
    assert den.diagonal
    return process, den


def mc_ratio(process, den, g, steps, method, seed=0, known=None):
    u = sample_latents(
        process,
        den,
        N_MC,
        steps,
        method,
        generator=torch.Generator().manual_seed(seed),
        known=known,
    ).double()
    w = process.prior.std.double() ** 2
    return u, float((w * u.var(0)).sum() / (w * g.variances).sum())


def ratio_se(process, g, cov_out, n=N_MC):
    """Standard error of the sampled image-space total variance ratio: the sample variance of
    sum_i w_i x_i has variance 2 tr((W C)^2) / (n - 1) for Gaussian x."""
    w = process.prior.std.double() ** 2
    wc = w[:, None] * (cov_out if cov_out.ndim == 2 else torch.diag(cov_out))
    return math.sqrt(2 * float((wc * wc.T).sum()) / (n - 1)) / float((w * g.variances).sum())


def assert_covariance_matches(u, out: Gaussian, slack=0.0):
    """Sample mean and covariance against the predicted N(mean, cov), in the predicted
    covariance's whitened frame: 5 standard errors on the mean diagonal, 5.5 on the worst."""
    n, d = u.shape
    cov = out.cov if out.cov.ndim == 2 else torch.diag(out.cov)
    lam, vec = torch.linalg.eigh(cov)
    w = (u - out.mean) @ vec / lam.clamp_min(1e-12).sqrt()
    mean_z = w.mean(0) * math.sqrt(n)
    m = (w - w.mean(0)).T @ (w - w.mean(0)) / (n - 1)
    diag = m.diagonal()
    assert mean_z.abs().max() < 5 + slack, mean_z.abs().max()
    assert (diag.mean() - 1).abs() / math.sqrt(2 / (n * d)) < 5 + slack, diag.mean()
    assert ((diag - 1).abs() / math.sqrt(2 / n)).max() < 5.5 + slack, diag


# ---------------------------------------------------------------- predictions against sampling


@pytest.mark.parametrize("softness", [math.inf, 1.0, 0.1])
@pytest.mark.parametrize("method", sorted(SAMPLERS))
def test_prediction_matches_monte_carlo(method, softness):
    """30 steps (biases of 5-60 %), 3000 samples: the predicted total variance ratio within 4
    standard errors, and the whole predicted mean and covariance within sampling error."""
    process, den, g = digits(softness)
    steps = 30
    out = sampled_gaussian(process, g, steps, method)
    pred = accuracy(process, g, steps, method).variance_ratio
    u, ratio = mc_ratio(process, den, g, steps, method, seed=1)
    assert abs(ratio - pred) < 4 * ratio_se(process, g, out.cov), (pred, ratio)
    assert_covariance_matches(u, out)


def test_the_comparison_can_fail():
    """A prediction for 40 steps must not pass for samples drawn with 30."""
    process, den, g = digits(0.1)
    out = sampled_gaussian(process, g, 40, "ancestral")
    u, ratio = mc_ratio(process, den, g, 30, "ancestral", seed=1)
    pred = accuracy(process, g, 40, "ancestral").variance_ratio
    assert abs(ratio - pred) > 4 * ratio_se(process, g, out.cov)
    with pytest.raises(AssertionError):
        assert_covariance_matches(u, out)


def test_prediction_with_known_components_matches_monte_carlo():
    """Low-pass conditioning: the prediction for the free components against sampling, and the
    ratios taken against the conditional Gaussian."""
    process, den, g = digits(1.0)
    mask = torch.zeros(SIZE * SIZE, dtype=torch.bool)
    mask[torch.tensor([0, 1, 8, 9])] = True  # the DCT's lowest frequencies
    values = process.encode(DIGITS[7:8])[0]
    known = (mask, values)
    out = sampled_gaussian(process, g, 30, "ancestral_corrected", known=known)
    u, _ = mc_ratio(process, den, g, 30, "ancestral_corrected", seed=2, known=known)
    assert torch.equal(u[:, mask], values.double().expand(N_MC, -1)[:, mask])
    assert torch.allclose(out.mean[mask], values.double()[mask])
    assert float(out.cov[mask][:, mask].abs().max()) == 0.0
    free = ~mask
    sub = Gaussian(out.mean[free], out.cov[free][:, free])
    assert_covariance_matches(u[:, free], sub)
    report = accuracy(process, g, 30, "ancestral_corrected", known=known)
    assert 0.5 < report.variance_ratio < 1.5 and not mask[report.worst_component]


def test_corrected_step_is_exact_for_independent_components():
    """Sigma diagonal: the corrected kernel is the exact one, so even 5 steps reproduce the
    data (up to E[u | z_0]'s shrinkage, ~e^-7), while the plain step loses much of it."""
    process, den = fields_fourier(softness=0.3)
    g = gaussian_of(process, den)
    assert g.diagonal
    plain = accuracy(process, g, 5, "ancestral")
    corrected = accuracy(process, g, 5, "ancestral_corrected")
    assert corrected.route == "diagonal"
    assert abs(corrected.variance_ratio - 1) < 2e-3 and abs(corrected.worst_ratio - 1) < 5e-3
    assert plain.variance_ratio < 0.8
    _, ratio = mc_ratio(process, den, g, 5, "ancestral_corrected", seed=3)
    assert abs(ratio - corrected.variance_ratio) < 4 * ratio_se(process, g, g.cov)


# ---------------------------------------------------------------- routes agree


@pytest.mark.parametrize("with_known", [False, True])
def test_diagonal_and_dense_routes_agree(with_known):
    process, den = fields_fourier(softness=0.3)
    g = gaussian_of(process, den)
    known = values = mask = None
    if with_known:
        mask = torch.zeros(SIZE * SIZE, dtype=torch.bool)
        mask[:5] = True
        values = torch.linspace(-1, 1, SIZE * SIZE, dtype=torch.float64)
        known, values = mask, torch.where(mask, values, 0.0)
    grid = grid_states(process, 40, mask, torch.float32)
    methods = sorted(SAMPLERS)
    diag = diagonal_route(g, grid, methods, known, values)
    dense = dense_route(Gaussian(g.mean, torch.diag(g.cov)), grid, methods, known, values, False)
    for method in methods:
        for a, b in zip(diag[method], dense[method], strict=True):
            assert torch.allclose(a, b, rtol=1e-8, atol=1e-10), method


def test_diagonal_route_in_chunks_of_steps(monkeypatch):
    """The scan carried across chunks of steps equals one pass over all of them."""
    from rgdiff_core.accuracy import propagate

    process, den = fields_fourier(softness=0.3)
    g = gaussian_of(process, den)
    grid = grid_states(process, 60, None, torch.float32)
    whole = diagonal_route(g, grid, sorted(SAMPLERS), None, None)
    monkeypatch.setattr(propagate, "CHUNK_ENTRIES", 7 * SIZE * SIZE)
    parts = diagonal_route(g, grid, sorted(SAMPLERS), None, None)
    for method in whole:
        for a, b in zip(whole[method], parts[method], strict=True):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14), method


def test_eigen_route_agrees_with_dense():
    """A scalar schedule: every gamma_i equal, so the recursion is diagonal in Sigma's
    eigenbasis; the corrected step (diag(P) not isotropic) keeps the dense route."""
    basis = make_basis("dct", (1, SIZE, SIZE))
    process = Process(basis, make_prior("data", basis, data=DIGITS), linear_schedule(-8, 9))
    g = gaussian_of(process, DIGITS)
    routes = {m: r.route for m, r in accuracies(process, g, 25).items()}
    assert routes == {m: ("dense" if m == "ancestral_corrected" else "eigen") for m in SAMPLERS}
    grid = grid_states(process, 25, None, torch.float32)
    dense = dense_route(g, grid, sorted(SAMPLERS), None, None, True)
    for method in sorted(SAMPLERS):
        eig = sampled_gaussian(process, g, 25, method)
        assert torch.allclose(eig.mean, dense[method][0], rtol=1e-7, atol=1e-9), method
        assert torch.allclose(eig.cov, dense[method][1], rtol=1e-7, atol=1e-9), method


def test_posterior_variance_of_the_gaussian_denoiser():
    """diag Cov(u | z_t) by its three routes: Cholesky, eigen (shared gamma), elementwise."""
    process, den, g = digits(1.0)
    state = process.noise_state(0.4)
    alpha = state.alpha.double()
    m = alpha[:, None] * g.cov * alpha[None, :] + torch.diag(state.sigma_sq.double())
    expect = (g.cov - (g.cov * alpha) @ torch.linalg.solve(m, alpha[:, None] * g.cov)).diagonal()
    got = den.posterior_variance(state)
    assert got.shape == (SIZE * SIZE,) and got.dtype == state.gamma.dtype
    assert torch.allclose(got.double(), expect, rtol=1e-5, atol=1e-7)
    shared = type(state)(torch.full((3, SIZE * SIZE), 0.5), torch.ones(3, SIZE * SIZE))
    a2, s2 = torch.sigmoid(torch.tensor(-0.5)), torch.sigmoid(torch.tensor(0.5))
    m = a2 * g.cov + s2 * torch.eye(SIZE * SIZE, dtype=torch.float64)
    expect = (g.cov - a2 * g.cov @ torch.linalg.solve(m, g.cov)).diagonal()
    got = den.posterior_variance(shared)
    assert got.shape == (3, SIZE * SIZE) and torch.allclose(got[1].double(), expect, rtol=1e-5)
    fproc, fden = fields_fourier()
    st = fproc.noise_state(0.3)
    v = fden.var
    expect = v * st.sigma_sq / (st.alpha_sq * v + st.sigma_sq)
    assert torch.allclose(fden.posterior_variance(st).double(), expect.double(), rtol=1e-5)


# ---------------------------------------------------------------- check 10: steps for accuracy


@pytest.mark.parametrize("softness", [math.inf, 1.0, 0.1])
def test_steps_for_accuracy_reach_the_tolerance(softness):
    """Done when: sampling the exact Gaussian at steps_for_accuracy(tol = 0.02) steps gives a
    total variance ratio within 0.02 of 1 plus Monte-Carlo error, one step fewer does not (by
    the advisor), and the corrected step needs fewer steps than the plain one."""
    process, den, g = digits(softness)
    steps = {m: steps_for_accuracy(process, g, method=m, tol=0.02) for m in SAMPLERS}
    for method in ("ancestral", "ancestral_corrected"):
        n = steps[method]
        assert abs(accuracy(process, g, n, method).variance_ratio - 1) <= 0.02
        assert n == 1 or abs(accuracy(process, g, n - 1, method).variance_ratio - 1) > 0.02
        _, ratio = mc_ratio(process, den, g, n, method, seed=4)
        se = ratio_se(process, g, g.cov)
        assert abs(ratio - 1) < 0.02 + 4 * se, (method, n, ratio)
    assert steps["ancestral_corrected"] < steps["ancestral"]
    floor = stiffness(process.schedule)["steps_needed"]
    assert steps["euler_maruyama"] >= floor and steps["heun_ode"] >= floor
    # dpm2m: the fewest denoiser evaluations of all, and Monte Carlo agrees at its count
    nfe = {m: nfe_count(m, n) for m, n in steps.items()}
    assert min(nfe, key=nfe.get) == "dpm2m", nfe
    _, ratio = mc_ratio(process, den, g, steps["dpm2m"], "dpm2m", seed=5)
    assert abs(ratio - 1) < 0.02 + 4 * ratio_se(process, g, g.cov), (steps["dpm2m"], ratio)


@pytest.mark.parametrize("method", SIGNED)
def test_deterministic_samplers_stay_within_the_tolerance_above_their_count(method):
    """Their error crosses zero on its way from under- to over-dispersion (dpm2m at s = 0.1:
    within 2 % by chance at 17 steps, not at 20-40): the count returned is one from which 1.5
    and 2 times as many steps pass too."""
    process, _, g = digits(0.1)
    n = steps_for_accuracy(process, g, method=method, tol=0.02)
    for m in (n, n + 1, (3 * n + 1) // 2, 2 * n):
        assert abs(accuracy(process, g, m, method).variance_ratio - 1) <= 0.02, (method, n, m)
    if method == "dpm2m":
        assert abs(accuracy(process, g, 17, method).variance_ratio - 1) <= 0.02 and n > 34


def _limit_error(process, g, steps: int, method: str) -> float:
    """|ratio - the exact sampler's ratio| on independent components, where the corrected
    ancestral step is exact at any count (it keeps only E[u | z_0]'s shrinkage)."""
    limit = accuracy(process, g, 1, "ancestral_corrected").variance_ratio
    return abs(accuracy(process, g, steps, method).variance_ratio - limit)


@pytest.mark.parametrize("method, order", [("ddim", 1), ("dpm2m", 2)])
def test_exponential_integrators_converge_with_their_order(method, order):
    """Independent components (diagonal route), s = 0.3: the exact Gaussian's variance error at
    2N steps is the error at N over 2^order (ddim 1st order, dpm2m 2nd), and it reaches 1e-3."""
    process, den = fields_fourier(softness=0.3)
    g = gaussian_of(process, den)
    errors = [_limit_error(process, g, n, method) for n in (80, 160, 320)]
    for coarse, fine in zip(errors, errors[1:], strict=False):
        assert 2**order * 0.85 < coarse / fine < 2**order * 1.15, errors
    assert errors[-1] < (0.03 if order == 1 else 1e-3)
    assert accuracy(process, g, 160, method).route == "diagonal"


def test_steps_for_accuracy_from_images_and_denoiser_agree():
    process, den, g = digits(1.0)
    assert steps_for_accuracy(process, DIGITS, method="heun_ode") == steps_for_accuracy(
        process, den, method="heun_ode"
    )


# ---------------------------------------------------------------- the corrected step itself


@pytest.mark.parametrize("method", ["ancestral_corrected", "ddim", "dpm2m"])
@pytest.mark.parametrize("denoiser", ["gaussian", "empirical"])
def test_frozen_and_known_components_do_not_move_bit_for_bit(denoiser, method):
    """Clipped components (gamma_s == gamma_t) and known ones keep their bits: the corrected
    step with the denoiser's posterior variance (Gaussian) and with the schedule's v
    (empirical); the exponential integrators, whose step there has h = 0."""
    basis = make_basis("wavelet", (1, SIZE, SIZE), wavelet="haar")
    spec = ProcessSpec(
        DataSpec("digits", SIZE),
        BasisSpec("wavelet"),
        PriorSpec("data"),
        ScheduleSpec(order="variance", softness=0.05, clip=True, gamma_noise=10.0),
    )
    process = build_process(spec, DIGITS)
    assert process.basis.dim == basis.dim
    den = (
        GaussianDenoiser.fit(process, DIGITS)
        if denoiser == "gaussian"
        else EmpiricalDenoiser(process, DIGITS[:200])
    )
    mask = torch.zeros(SIZE * SIZE, dtype=torch.bool)
    mask[-3:] = True
    seen = []
    sample_latents(
        process,
        den,
        6,
        40,
        method,
        generator=torch.Generator().manual_seed(8),
        callback=lambda info: seen.append(info.z.clone()),
        known=(mask, process.encode(DIGITS[:1])[0]),
    )
    ts = torch.linspace(1, 0, 41, dtype=torch.float64)
    for k in range(1, 40):
        g_t = process.noise_state(float(ts[k])).gamma
        g_s = process.noise_state(float(ts[k + 1])).gamma
        still = (g_t == g_s) | mask
        assert still.any() and (~still).any()
        assert torch.equal(seen[k - 1][:, still], seen[k][:, still])
        assert not torch.equal(seen[k - 1][:, ~still], seen[k][:, ~still])


def test_corrected_step_is_registered_with_one_evaluation_per_step():
    assert "ancestral_corrected" in SAMPLERS and "ancestral" in SAMPLERS
    assert nfe_count("ancestral_corrected", 50) == 51
    assert nfe_count("ddim", 50) == nfe_count("dpm2m", 50) == 51


def test_dpm2m_first_step_is_ddim_and_later_steps_use_the_previous_estimate():
    """One step of dpm2m is one ddim step; over two steps they differ (the second uses the
    previous x0_hat), and a known component sits at its value bit for bit in both."""
    process, den, g = digits(1.0)
    mask = torch.zeros(SIZE * SIZE, dtype=torch.bool)
    mask[3] = True
    known = (mask, torch.full((SIZE * SIZE,), 0.25))
    runs = {}
    for method in ("ddim", "dpm2m"):
        for steps in (1, 2):
            gen = torch.Generator().manual_seed(0)
            runs[method, steps] = sample_latents(process, den, 4, steps, method, gen, known=known)
    assert torch.equal(runs["ddim", 1], runs["dpm2m", 1])
    assert not torch.allclose(runs["ddim", 2], runs["dpm2m", 2])
    for u in runs.values():
        assert torch.equal(u[:, 3], torch.full((4,), 0.25))


# ---------------------------------------------------------------- bad input


def _white(process):
    return Process(process.basis, make_prior("white", process.basis), process.schedule)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p, g: accuracy(p, g, 0), "steps"),
        (lambda p, g: accuracy(p, g, 10**6), "steps"),
        (lambda p, g: accuracy(p, g, True), "steps"),
        (lambda p, g: accuracy(p, g, 10, "rk4"), "method"),
        (lambda p, g: accuracy(p, g, 10, dtype=torch.int32), "dtype"),
        (lambda p, g: accuracy(p, g, 10, known=(torch.ones(3, dtype=torch.bool), 0)), "known"),
        (lambda p, g: accuracy(p, (torch.zeros(63), g.cov), 10), "mean"),
        (lambda p, g: accuracy(p, (g.mean, torch.ones(64, 63)), 10), "cov"),
        (lambda p, g: accuracy(p, (g.mean, -torch.ones(64)), 10), "cov"),
        (lambda p, g: accuracy(p, (g.mean, torch.triu(g.cov)), 10), "cov"),
        (lambda p, g: accuracy(p, "digits", 10), "data"),
        (lambda p, g: gaussian_of(p, torch.zeros(3, 1, 8, 9)), "data"),
        (lambda p, g: gaussian_of(_white(p), digits(1.0)[1]), "data"),
        (lambda p, g: steps_for_accuracy(p, g, tol=0), "tol"),
        (lambda p, g: steps_for_accuracy(p, g, tol=1.5), "tol"),
        (lambda p, g: steps_for_accuracy(p, g, tol=True), "tol"),
        (lambda p, g: steps_for_accuracy(p, g, max_steps=0), "max_steps"),
        (lambda p, g: steps_for_accuracy(p, g, max_steps=2.5), "max_steps"),
        (lambda p, g: steps_for_accuracy(p, g, method="rk4"), "method"),
        (lambda p, g: steps_for_accuracy(p, g, method="heun_ode", max_steps=3), "max_steps"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    process, _, g = digits(1.0)
    with pytest.raises(ValueError, match=name):
        call(process, g)


def test_unreachable_tolerance_names_tol_and_max_steps():
    process, _, g = digits(1.0)
    with pytest.raises(ValueError, match="tol") as err:
        steps_for_accuracy(process, g, tol=1e-4, max_steps=64)
    assert "max_steps = 64" in str(err.value)


def test_diagonal_gaussian_is_the_first_items_component_moments():
    from rgdiff_core.accuracy import diagonal_gaussian
    from rgdiff_core.data import load_dataset
    from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, build_process

    data = load_dataset("digits", 8)
    process = build_process(
        ProcessSpec(DataSpec("digits", 8), BasisSpec("dct"), PriorSpec("data")), data
    )
    mean, var = diagonal_gaussian(process, data, items=500)
    u = process.encode(data[:500]).double()
    assert mean.dtype == torch.float64 and mean.shape == (64,)
    assert torch.allclose(mean, u.mean(0)) and torch.allclose(var, u.var(0))
    assert steps_for_accuracy(process, (mean, var), method="dpm2m") >= 1
