"""rgdiff_core.likelihood: the negative ELBO in bits/dim (docs/maths.md §2c, check 9 of §6).

Gaussian fields with the exact Gaussian denoiser: the ELBO equals the exact negative
log-likelihood under N(0, C) for every basis, softness and clip (the bound's own gap, decoder
plus prior term, is ~0.002 bits/dim at γ̃_d = -7, γ̃_n = 12), within 0.01 bits/dim plus three
Monte-Carlo standard errors. Then the pieces: L_T is the exact KL, frozen components add
nothing, a wrong denoiser is worse, bad input is refused, and the empirical and trained
denoisers give finite numbers."""

import math

import pytest
import torch

from rgdiff_core.bases import BASES
from rgdiff_core.data import gaussian_field, gaussian_field_covariance, load_dataset
from rgdiff_core.denoisers import (
    EmpiricalDenoiser,
    GaussianDenoiser,
    component_covariance,
    load_model,
)
from rgdiff_core.likelihood import DEFAULT_N_T, ELBO, elbo
from rgdiff_core.process import Process
from rgdiff_core.schedules import NoiseState, Schedule
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)

SIZE = 8
D = SIZE * SIZE
N = 128  # images per bound
GAMMA_NOISE = 12.0  # L_T ~ D e^-12 / 2 ~ 2e-4 nat: the gap is the decoder's
COV = gaussian_field_covariance(SIZE, 3.0, 1.0)
TRAIN = gaussian_field(2000, SIZE, generator=torch.Generator().manual_seed(0))
X = gaussian_field(N, SIZE, generator=torch.Generator().manual_seed(1))
SOFTNESS = [math.inf, 3.0, 1.0, 0.3, 0.1]


def exact_bpd(x: torch.Tensor) -> float:
    """-log N(x; 0, C) per dimension in bits, by Cholesky (independent of the library)."""
    chol = torch.linalg.cholesky(COV)
    flat = x.double().flatten(1)
    white = torch.linalg.solve_triangular(chol, flat.T, upper=False)
    nll = 0.5 * (white**2).sum(0) + chol.diagonal().log().sum() + 0.5 * D * math.log(2 * math.pi)
    return float(nll.mean()) / (D * math.log(2))


NLL = exact_bpd(X)


def expected_gap(process) -> float:
    """E[-ELBO] - E[NLL] in bits/dim for the exact denoiser (docs/maths.md §2c, §2b): the
    decoder's 1/2 log det(I + Sigma^-1 e^gamma(0)) plus L_T - I(u; z_1), I(u; z_1) =
    1/2 log det(I + Sigma e^-gamma(1)), Sigma the whitened covariance, mu = -m / s its mean."""
    s, m = process.prior.std.double(), process.prior.mean.double()
    sigma = component_covariance(process.basis, COV) / s[:, None] / s[None, :]
    like = torch.zeros(1, dtype=torch.float64)
    g0 = process.noise_state(0.0, like=like).gamma.expand(D)
    g1 = process.noise_state(1.0, like=like).gamma.expand(D)
    decoder = torch.logdet(sigma + torch.diag(g0.exp())) - torch.logdet(sigma)
    a1 = torch.sigmoid(-g1)
    l_t = (a1 * (sigma.diagonal() + (m / s) ** 2 - 1) - torch.nn.functional.logsigmoid(g1)).sum()
    info = torch.logdet(torch.eye(D, dtype=torch.float64) + sigma * torch.exp(-g1)[None, :])
    return 0.5 * float(decoder + l_t - info) / (D * math.log(2))


def field_process(basis: str, schedule: ScheduleSpec) -> Process:
    spec = ProcessSpec(DataSpec("fields", SIZE), BasisSpec(basis), PriorSpec("data"), schedule)
    return build_process(spec, TRAIN)


def exact_denoiser(process) -> GaussianDenoiser:
    return GaussianDenoiser(process, torch.zeros(D), COV)


def bound(process, denoiser, x=X, seed=0, **kw) -> ELBO:
    return elbo(process, denoiser, x, generator=torch.Generator().manual_seed(seed), **kw)


def test_exact_nll_reference_agrees_with_torch():
    mvn = torch.distributions.MultivariateNormal(torch.zeros(D, dtype=torch.float64), COV)
    ref = -mvn.log_prob(X.double().flatten(1)).mean() / (D * math.log(2))
    assert NLL == pytest.approx(float(ref), abs=1e-9)


# ---------------------------------------------------------------- the ELBO is the NLL (check 9)

GRID = [
    (basis, ScheduleSpec(softness=s, clip=clip, gamma_noise=GAMMA_NOISE))
    for basis in BASES
    for s in SOFTNESS
    for clip in (True, False)
] + [(basis, ScheduleSpec(family="linear", gamma_min=-8.0, gamma_max=12.0)) for basis in BASES]
SEEN: list[tuple[str, str, float, float, float]] = []  # basis, schedule, gap, expected, stderr


def _id(basis: str, s: ScheduleSpec) -> str:
    if s.family != "soft":
        return f"{basis}-{s.family}"
    return f"{basis}-s{s.softness:g}" + ("-clip" if s.clip else "")


@pytest.mark.parametrize(("basis", "schedule"), GRID, ids=[_id(b, s) for b, s in GRID])
def test_elbo_equals_exact_nll_for_gaussian_fields(basis, schedule):
    process = field_process(basis, schedule)
    # a seed per setting: the pixel basis makes every soft setting nearly the same process
    result = bound(process, exact_denoiser(process), seed=GRID.index((basis, schedule)))
    gap, expected = result.bpd - NLL, expected_gap(process)
    SEEN.append((basis, schedule.label(), gap, expected, result.stderr))
    assert math.isfinite(result.bpd) and result.stderr > 0
    assert abs(gap) <= 0.01 + 3 * result.stderr, (gap, result.stderr)
    assert gap >= -3 * result.stderr  # a bound, up to Monte-Carlo error
    # and the bound's own gap (~0.001 bits/dim here) is the one the maths predicts
    assert abs(gap - expected) <= 0.002 + 4 * result.stderr, (gap, expected, result.stderr)
    assert result.stderr <= 0.004  # the default n_t keeps it tight (largest seen: 0.0032)
    assert result.n == N and result.n_t == DEFAULT_N_T
    # the parts add up, in nats per image
    total = result.prior + result.diffusion + result.reconstruction + result.log_scale
    assert result.bpd == pytest.approx(total / (D * math.log(2)), rel=1e-12)
    assert result.bpd_8bit == pytest.approx(result.bpd + math.log2(127.5), rel=1e-12)


def test_grid_summary():
    """The largest gaps over the grid above (runs after it; prints with -s)."""
    if not SEEN:
        pytest.skip("run with the grid")
    worst = max(SEEN, key=lambda r: abs(r[2]))
    worst_z = max(SEEN, key=lambda r: abs(r[2] - r[3]) / r[4])
    print(
        f"\nlargest |ELBO - NLL| {abs(worst[2]):.4f} bits/dim ({worst[0]}, {worst[1]}); "
        f"largest |ELBO - NLL - expected gap| / stderr "
        f"{abs(worst_z[2] - worst_z[3]) / worst_z[4]:.2f} ({worst_z[0]}, {worst_z[1]}); "
        f"stderr {min(r[4] for r in SEEN):.4f}..{max(r[4] for r in SEEN):.4f}"
    )
    for basis, label, gap, expected, se in SEEN:
        print(f"{basis:8s} {label:55s} {gap:+.4f} ± {se:.4f} (expected {expected:+.4f})")


# ---------------------------------------------------------------- the terms


def test_prior_term_is_the_exact_kl_and_matches_the_closed_form():
    process = field_process("dct", ScheduleSpec(softness=1.0, clip=True, gamma_noise=3.0))
    result = bound(process, exact_denoiser(process), n_t=2)
    state = process.noise_state(1.0, like=torch.zeros(1, dtype=torch.float64))
    alpha = state.alpha.expand(D)
    sigma = state.sigma.expand(D)
    u = process.encode(X.double()).double()
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(alpha * u, sigma), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    assert result.prior == pytest.approx(float(kl.mean()), rel=1e-6)
    # closed form from the true second moments E[u_i^2] = Sigma_ii + mu_i^2 (whitened)
    s, m = process.prior.std.double(), process.prior.mean.double()
    var_c = component_covariance(process.basis, COV).diagonal()  # the fields have mean 0
    u_sq = (var_c + m**2) / s**2
    closed = 0.5 * float(
        (state.alpha_sq * u_sq + state.sigma_sq - 1 - state.sigma_sq.log()).expand(D).sum()
    )
    spread = float(kl.std()) / math.sqrt(N)
    assert closed > 0.5  # γ̃_n = 3 leaves signal: a real test of the formula
    assert result.prior == pytest.approx(closed, abs=4 * spread)


def test_reconstruction_term_is_the_gaussian_decoder_expectation():
    process = field_process("fourier", ScheduleSpec(softness=0.3, clip=True, gamma_noise=12.0))
    result = bound(process, exact_denoiser(process), n_t=2)
    gamma_0 = process.noise_state(0.0, like=torch.zeros(1, dtype=torch.float64)).gamma
    expected = 0.5 * float((math.log(2 * math.pi) + gamma_0 + 1).expand(D).sum())
    assert result.reconstruction == pytest.approx(expected, rel=1e-12)
    assert result.log_scale == pytest.approx(float(process.prior.std.double().log().sum()))


class PartlyFrozen(Schedule):
    """A linear schedule on every component but `frozen`, which stays at gamma = `level`."""

    def __init__(self, frozen: torch.Tensor, level: float = -2.0):
        self.dim, self.frozen, self.level = frozen.numel(), frozen, level

    def gamma(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        moving = (-8.0 + 20.0 * t).unsqueeze(-1).expand(*t.shape, self.dim)
        return torch.where(self.frozen, torch.full_like(moving, self.level), moving)

    def dgamma_dt(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        rate = torch.full((*t.shape, self.dim), 20.0, dtype=torch.float64)
        return torch.where(self.frozen, torch.zeros_like(rate), rate)


def test_frozen_components_add_nothing_to_the_diffusion_term():
    base = field_process("fourier", ScheduleSpec(family="linear"))
    frozen = torch.zeros(D, dtype=torch.bool)
    frozen[::3] = True
    process = Process(base.basis, base.prior, PartlyFrozen(frozen))
    exact = exact_denoiser(process)

    def wrong_where_frozen(z, t, state: NoiseState):
        # garbage on frozen components: it must not reach the bound
        return exact(z, t, state=state) + 100.0 * frozen.to(z)

    first = bound(process, exact, n_t=8)
    second = bound(process, wrong_where_frozen, n_t=8)
    assert second.bpd == first.bpd and second.diffusion == first.diffusion
    # fully frozen: no diffusion at all, and the bound is L_T + L_0 + sum log s exactly
    still = Process(base.basis, base.prior, PartlyFrozen(torch.ones(D, dtype=torch.bool)))
    result = bound(still, exact_denoiser(still), n_t=4)
    assert result.diffusion == 0.0 and result.stderr == 0.0
    assert result.reconstruction == pytest.approx(0.5 * D * (math.log(2 * math.pi) - 2.0 + 1))


@pytest.mark.parametrize("wrong", ["shift", "scale"])
def test_a_wrong_denoiser_gives_a_worse_bound(wrong):
    process = field_process("dct", ScheduleSpec(softness=1.0, clip=True, gamma_noise=12.0))
    exact = exact_denoiser(process)

    def off(z, t, state):
        x0_hat = exact(z, t, state=state)
        return x0_hat + 0.05 if wrong == "shift" else 1.1 * x0_hat

    good, bad = bound(process, exact), bound(process, off)
    assert bad.bpd > good.bpd + 3 * math.hypot(good.stderr, bad.stderr)
    if wrong == "shift":
        # a constant offset delta adds 1/2 delta^2 sum_i (e^-gamma_i(0) - e^-gamma_i(1)) nats
        like = torch.zeros(1, dtype=torch.float64)
        snr_0 = process.noise_state(0.0, like=like).snr
        snr_1 = process.noise_state(1.0, like=like).snr
        extra = 0.5 * 0.05**2 * float((snr_0 - snr_1).sum()) / (D * math.log(2))
        tol = 0.1 * extra + 3 * math.hypot(good.stderr, bad.stderr)
        assert bad.bpd - good.bpd == pytest.approx(extra, abs=tol)


def test_seeded_runs_repeat_and_report_uncertainty():
    process = field_process("wavelet", ScheduleSpec(softness=0.3, clip=True, gamma_noise=12.0))
    den = exact_denoiser(process)
    a, b = bound(process, den, n_t=8, seed=3), bound(process, den, n_t=8, seed=3)
    assert a == b
    assert bound(process, den, n_t=8, seed=4).bpd != a.bpd
    assert a.stderr_data > a.stderr > 0  # the spread over images includes the Monte Carlo
    one = bound(process, den, x=X[:1], n_t=1)
    assert math.isnan(one.stderr) and math.isnan(one.stderr_data) and math.isfinite(one.bpd)
    odd = bound(process, den, n_t=3, batch=5)
    assert math.isfinite(odd.stderr) and odd.stderr > 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"x": X[:0]}, "x"),
        ({"x": X[0]}, "x"),
        ({"x": X[:, :, :4]}, "x"),
        ({"x": torch.zeros(2, 2, SIZE, SIZE)}, "x"),
        ({"x": X.numpy()}, "x"),
        ({"x": X.clone().index_put_((torch.tensor([3]),), torch.tensor(math.nan))}, "x"),
        ({"x": X.clone().index_fill_(0, torch.tensor([0]), math.inf)}, "x"),
        ({"x": torch.zeros(2, 1, SIZE, SIZE, dtype=torch.long)}, "x"),
        ({"n_t": 0}, "n_t"),
        ({"n_t": 2.5}, "n_t"),
        ({"n_t": True}, "n_t"),
        ({"batch": 1}, "batch"),
        ({"generator": 3}, "generator"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, name):
    process = field_process("pixel", ScheduleSpec(family="linear"))
    args = {"x": X[:4], "n_t": 2, **kwargs}
    x = args.pop("x")
    with pytest.raises(ValueError, match=rf"^{name} must"):
        elbo(process, exact_denoiser(process), x, **args)


# ---------------------------------------------------------------- other denoisers


def test_empirical_denoiser_gives_finite_numbers_and_memorises():
    data = load_dataset("digits", 8)
    spec = ProcessSpec(
        DataSpec("digits", 8), BasisSpec("dct"), PriorSpec("data"), ScheduleSpec(softness=1.0)
    )
    process = build_process(spec, data)
    den = EmpiricalDenoiser(process, data[:200])
    seen = bound(process, den, x=data[:4], n_t=8)
    held_out = bound(process, den, x=load_dataset("digits", 8, split="test")[:4], n_t=8)
    for result in (seen, held_out):
        assert all(math.isfinite(v) for v in (result.bpd, result.stderr, result.diffusion))
    # the empirical denoiser is the finite set's own optimum: its items are far likelier
    assert seen.bpd < held_out.bpd


def test_network_denoiser_gives_finite_numbers():
    process, den = load_model("assets/models/digits_dct.pt", softness=1.0)
    x = load_dataset("digits", 32, split="test")[:2]
    result = bound(process, den, x=x, n_t=2)
    assert all(math.isfinite(v) for v in (result.bpd, result.stderr, result.prior))
    assert result.n == 2 and result.n_t == 2
