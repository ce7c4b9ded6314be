"""rgdiff_core.metrics: power spectra, sliced Wasserstein, nearest-neighbour distance."""

import math

import pytest
import torch

from rgdiff_core.data import gaussian_field, gaussian_field_spectrum
from rgdiff_core.metrics import (
    nearest_neighbour_distance,
    radial_average,
    rapsd,
    rapsd_log_error,
    sliced_wasserstein,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- spectra


def test_rapsd_of_gaussian_field_matches_true_spectrum():
    size, n = 16, 2000
    x = gaussian_field(n, size, exponent=3.0, mass=1.0, generator=_gen())
    k, p = rapsd(x)
    k_true, p_true = radial_average(gaussian_field_spectrum(size, 3.0, 1.0))
    assert torch.equal(k, torch.arange(size // 2 + 1)) and torch.equal(k, k_true)
    # Each mode's power is P * chi^2 / dof (relative std <= sqrt 2); a bin of m modes holds at
    # least m / 2 independent ones (Hermitian pairs), so its relative std is <= 2 / sqrt(n m).
    freq = torch.fft.fftfreq(size) * size
    radius = torch.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2).round().long().flatten()
    modes = torch.bincount(radius, minlength=size)[: size // 2 + 1].double()
    assert torch.all((p / p_true - 1).abs() < 4 * 2 / (n * modes).sqrt())
    # ... and the test has power: a field with exponent 2.5 is outside it somewhere.
    _, p_wrong = radial_average(gaussian_field_spectrum(size, 2.5, 1.0))
    assert torch.any((p / p_wrong - 1).abs() > 4 * 2 / (n * modes).sqrt())


def test_rapsd_white_noise_is_flat_and_parseval():
    x = 0.3 * torch.randn(500, 2, 8, 8, generator=_gen())
    k, p = rapsd(x)
    assert k.tolist() == [0, 1, 2, 3, 4] and p.dtype == torch.float64
    assert torch.allclose(p, torch.full_like(p, 0.09), rtol=0.15)
    ones = torch.ones(1, 1, 8, 8)  # all power in k = 0: sum of squares = 64
    assert rapsd(ones)[1].tolist() == pytest.approx([64, 0, 0, 0, 0], abs=1e-12)


def test_rapsd_log_error():
    x = gaussian_field(64, 16, generator=_gen())
    assert rapsd_log_error(x, x) == 0.0
    assert rapsd_log_error(x, 2 * x) == pytest.approx(math.log(4))
    y = gaussian_field(64, 16, generator=_gen(1))
    assert 0 < rapsd_log_error(x, y) == pytest.approx(rapsd_log_error(y, x))


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: rapsd(torch.zeros(2, 1, 8, 4)), "x"),
        (lambda: rapsd(torch.zeros(8, 8)), "x"),
        (lambda: rapsd(torch.zeros(0, 1, 8, 8)), "x"),
        (lambda: rapsd_log_error(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4)), "b"),
        (lambda: radial_average(torch.zeros(4)), "power"),
    ],
)
def test_rapsd_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ---------------------------------------------------------------- sliced Wasserstein


def test_sliced_wasserstein_properties():
    a = torch.randn(400, 1, 4, 4, generator=_gen(0))
    b = torch.randn(300, 1, 4, 4, generator=_gen(1))
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, torch.cat([a, a])) == pytest.approx(0.0, abs=1e-12)
    same = sliced_wasserstein(a, b)
    assert sliced_wasserstein(b, a) == pytest.approx(same, rel=1e-12)
    shifted = sliced_wasserstein(a, b + 0.5)
    assert shifted > same + 0.05
    g1, g2 = _gen(7), _gen(7)
    assert sliced_wasserstein(a, b, generator=g1) == sliced_wasserstein(a, b, generator=g2)
    assert sliced_wasserstein(a, b) == sliced_wasserstein(a, b)  # default generator is seeded


def test_sliced_wasserstein_hand_examples():
    a = torch.randn(100, 1, generator=_gen())
    assert sliced_wasserstein(a, a + 3.0, n_proj=4) == pytest.approx(3.0)  # 1-D: a shift
    # Unequal sizes, exact quantile matching: {0, 1} against {0, 0, 1}: the middle third of
    # the quantile levels differs by 1, so W2^2 = 1/6 in every projection (D = 1).
    two, three = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [0.0], [1.0]])
    assert sliced_wasserstein(two, three, n_proj=3) == pytest.approx(math.sqrt(1 / 6))


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: sliced_wasserstein(torch.zeros(3, 4), torch.zeros(3, 5)), "b"),
        (lambda: sliced_wasserstein(torch.zeros(0, 4), torch.zeros(3, 4)), "a"),
        (lambda: sliced_wasserstein(torch.zeros(3, 4), torch.zeros(3, 4), n_proj=0), "n_proj"),
    ],
)
def test_sliced_wasserstein_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ---------------------------------------------------------------- nearest neighbour


def test_nearest_neighbour_distance_members_are_zero():
    ref = torch.randn(50, 1, 8, 8, generator=_gen())
    d = nearest_neighbour_distance(ref[[3, 17, 42]], ref, chunk=16)
    assert d.shape == (3,) and torch.equal(d, torch.zeros(3, dtype=torch.float64))


def test_nearest_neighbour_distance_hand_example():
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 10.0]])
    samples = torch.tensor([[0.0, 1.0], [3.0, 0.0], [3.0, 5.0]])
    expected = torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    for chunk in (1, 2, 1024):
        got = nearest_neighbour_distance(samples, ref, chunk=chunk)
        assert torch.allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: nearest_neighbour_distance(torch.zeros(2, 3), torch.zeros(2, 4)), "reference"),
        (lambda: nearest_neighbour_distance(torch.zeros(2, 3), torch.zeros(0, 3)), "reference"),
        (lambda: nearest_neighbour_distance(torch.zeros(2, 3), torch.zeros(2, 3), 0), "chunk"),
    ],
)
def test_nearest_neighbour_distance_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()
