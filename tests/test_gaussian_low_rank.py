"""The exact Gaussian denoiser's low-rank route (whitened Sigma = L L^T + c I, rank <= D / 4:
data on a subspace plus the jitter) against its dense Cholesky route and the closed form
mu + Sigma A (A Sigma A + diag sigma^2)^-1 (z - A mu); when it is chosen and when it is not."""

import pytest
import torch

from rgdiff_core.bases import make_basis
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers import GaussianDenoiser
from rgdiff_core.priors import make_prior
from rgdiff_core.process import Process
from rgdiff_core.schedules import order_labels, soft_conditioning_schedule
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)
from tests import test_gaussian_fast_path as fast_path

D, SHAPE = fast_path.D, fast_path.SHAPE  # 8 x 8, one channel
JITTER = 1e-6


def subspace_covariance(rank: int, seed: int = 0) -> torch.Tensor:
    """A data-space covariance of the given rank (random factor, unequal scales)."""
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(D, rank, generator=g, dtype=torch.float64)
    factor = factor * torch.linspace(2.0, 0.2, rank, dtype=torch.float64)
    return factor @ factor.T / rank


MEAN = 0.3 * torch.sin(torch.arange(D, dtype=torch.float64))


def pixel_process() -> Process:
    basis = make_basis("pixel", SHAPE)
    return Process(
        basis,
        make_prior("white", basis),
        soft_conditioning_schedule(order_labels("raster", basis), 0.5),
    )


def closed_form(process, cov, z, state):
    return fast_path.closed_form(process, z, state, cov=cov, mean=MEAN, jitter=JITTER)


@pytest.mark.parametrize("rank", [1, 5, D // 4])
def test_low_rank_route_equals_dense_route_and_closed_form(rank):
    process = pixel_process()
    cov = subspace_covariance(rank)
    fast = GaussianDenoiser(process, MEAN, cov, jitter=JITTER)
    dense = GaussianDenoiser(process, MEAN, cov, jitter=JITTER, dense=True)
    assert fast.low_rank == rank and dense.low_rank is None
    z = 1.5 * torch.randn(5, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.zeros(D, dtype=torch.bool)
    mask[::3] = True
    for t in (0.0, 1e-3, 0.2, 0.5, 0.8, 0.999, 1.0):
        for known in (None, mask):
            state = process.noise_state(t, known=known, like=z)
            got = fast(z, t, state=state)
            scale = 1 + closed_form(process, cov, z, state).abs().max()
            assert (got - dense(z, t, state=state)).abs().max() <= 1e-8 * scale, (t, known)
            assert (got - closed_form(process, cov, z, state)).abs().max() <= 1e-8 * scale
            if known is not None:  # a known component is returned as given, bit for bit
                assert torch.equal(got[:, mask], z[:, mask])
    per_example = torch.tensor([0.05, 0.3, 0.5, 0.7, 0.95])
    state = process.noise_state(per_example, like=z)
    ref = closed_form(process, cov, z, state)
    assert (fast(z, per_example) - ref).abs().max() <= 1e-8 * (1 + ref.abs().max())
    # float32 in, float32 out, same answer to float32 precision
    z32 = z.float()
    got32 = fast(z32, 0.4)
    assert got32.dtype == torch.float32
    assert torch.allclose(got32, dense(z32, 0.4), rtol=1e-5, atol=1e-5)


def test_route_is_chosen_only_for_low_rank_plus_a_constant():
    process = pixel_process()
    # rank above D / 4: Cholesky is kept
    assert GaussianDenoiser(process, MEAN, subspace_covariance(D // 4 + 1)).low_rank is None
    # full rank: no route
    full = subspace_covariance(D) + 0.1 * torch.eye(D, dtype=torch.float64)
    assert GaussianDenoiser(process, MEAN, full).low_rank is None
    # a low-rank part plus an uneven diagonal is not L L^T + c I
    uneven = subspace_covariance(4) + torch.diag(torch.linspace(0.01, 0.02, D).double())
    assert GaussianDenoiser(process, MEAN, uneven).low_rank is None
    # without jitter there is no c > 0 to carry known components: dense route
    assert GaussianDenoiser(process, MEAN, subspace_covariance(4), jitter=0).low_rank is None


def test_scaled_up_digits_take_the_low_rank_route():
    """The 8 x 8 digits scaled up to 32 x 32 lie on a subspace of at most 64 dimensions: the
    fitted Gaussian takes the low-rank route there (the speed budget of bench_network.py), and
    agrees with its dense self on a soft schedule."""
    train = load_dataset("digits", 32, "train")
    spec = ProcessSpec(
        DataSpec("digits", 32),
        BasisSpec("wavelet", wavelet="haar"),
        PriorSpec("data"),
        ScheduleSpec(family="soft", order="scale", softness=1.0, clip=True),
    )
    process = build_process(spec, train)
    fast = GaussianDenoiser.fit(process, train[:600])
    assert fast.low_rank is not None and fast.low_rank <= 64
    flat = train[:600].flatten(1).double()
    cov = torch.cov(flat.T)
    dense = GaussianDenoiser(process, flat.mean(0), cov, jitter=1e-4, dense=True)
    z = torch.randn(3, process.dim, generator=torch.Generator().manual_seed(2))
    for t in (0.1, 0.5, 0.9):
        ref = dense(z, t)
        assert (fast(z, t) - ref).abs().max() <= 1e-4 * (1 + ref.abs().max()), t
