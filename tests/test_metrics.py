"""rgdiff_core.metrics: power spectra, sliced Wasserstein, nearest-neighbour distance; the
feature metrics (FD, precision/recall, nearest-neighbour ratio) on hand-made feature sets.
Their validation on glyph images with the shipped classifier is tests/test_metrics_glyphs.py."""

import math

import pytest
import torch

from rgdiff_core.data import gaussian_field, gaussian_field_spectrum
from rgdiff_core.metrics import (
    Estimate,
    frechet_distance,
    nearest_neighbour_distance,
    nearest_neighbour_ratio,
    precision_recall,
    radial_average,
    rapsd,
    rapsd_log_error,
    sample_quality,
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


# ---------------------------------------------------------------- Fréchet distance


def _frechet_reference(a, b):
    """FD with tr (C_a C_b)^1/2 from the (real, non-negative) eigenvalues of C_a C_b."""
    a, b = a.double(), b.double()
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    cross = torch.linalg.eigvals(ca @ cb).real.clamp_min(0).sqrt().sum()
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + ca.trace() + cb.trace() - 2 * cross


def test_frechet_distance_identities():
    a = torch.randn(300, 6, generator=_gen()) @ torch.randn(6, 6, generator=_gen(1))
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(a, a).value == pytest.approx(0.0, abs=1e-9)
    # a shift moves only the mean term; doubling about the origin: |mu|^2 + tr C (1 + 4 - 4)
    assert frechet_distance(a, a + shift).value == pytest.approx(float(shift @ shift), rel=1e-9)
    want = float(a.double().mean(0).square().sum() + torch.cov(a.double().T).trace())
    assert frechet_distance(a, 2 * a).value == pytest.approx(want, rel=1e-9)
    b = torch.randn(200, 6, generator=_gen(2)) * torch.arange(1.0, 7.0)
    fd = frechet_distance(a, b)
    assert isinstance(fd, Estimate) and fd.se > 0
    assert fd.value == pytest.approx(float(_frechet_reference(a, b)), rel=1e-9)
    assert frechet_distance(b, a).value == pytest.approx(fd.value, rel=1e-9)
    # more features than items: singular covariances are fine
    c, d = torch.randn(5, 20, generator=_gen(3)), torch.randn(7, 20, generator=_gen(4))
    assert frechet_distance(c, d).value == pytest.approx(float(_frechet_reference(c, d)), rel=1e-7)


def test_frechet_distance_bootstrap_is_seeded_and_shrinks_with_n():
    big = torch.randn(4000, 4, generator=_gen())
    small = [frechet_distance(big[:100], big[100:200] + 0.5, generator=_gen(s)) for s in (5, 5)]
    assert small[0] == small[1]  # same generator seed, same replicates
    large = frechet_distance(big[:2000], big[2000:] + 0.5, generator=_gen(5))
    assert large.value == pytest.approx(1.0, abs=0.15)  # |shift|^2 = 4 * 0.25
    assert large.se < small[0].se / 3  # ~ 1 / sqrt(n): 20 x the items, ~4.5 x smaller


# ---------------------------------------------------------------- precision and recall


def test_precision_recall_hand_examples():
    ref = torch.arange(10.0)[:, None]  # k = 1: every reference ball has radius 1
    (p, r) = precision_recall(torch.tensor([[0.5], [20.0]]), ref, k=1)
    # 0.5 lies in the ball of 0, 20 in none; the two sample balls have radius 19.5: all covered
    assert (p.value, r.value) == (0.5, 1.0)
    (p, r) = precision_recall(torch.tensor([[0.5], [1.5]]), ref, k=1)
    assert (p.value, r.value) == (1.0, 0.3)  # sample balls of radius 1 cover 0, 1, 2
    # k = 2: the ends of 0..9 have radius 2, the rest 1, so 11 (not 11.5) joins the ball of 9
    far = torch.tensor([[11.0], [11.5], [12.0]])
    assert precision_recall(far, ref, k=1)[0].value == 0.0
    assert precision_recall(far, ref, k=2)[0].value == pytest.approx(1 / 3)


def test_precision_recall_same_and_disjoint_sets():
    a = torch.randn(200, 8, generator=_gen())
    p, r = precision_recall(a, a)
    assert (p.value, r.value) == (1.0, 1.0)
    p, r = precision_recall(a + 100.0, a)
    assert (p, r) == (Estimate(0.0, 0.0), Estimate(0.0, 0.0))  # every replicate is 0
    b = torch.randn(200, 8, generator=_gen(1))
    p, r = precision_recall(b, a, generator=_gen(3))
    assert 0.5 < p.value <= 1 and 0.5 < r.value <= 1 and 0 < p.se < 0.1 and 0 < r.se < 0.1
    # a sample set squeezed to a point: precise (it lies on the data) but without recall
    p, r = precision_recall(0.05 * b, a)
    assert p.value == 1.0 and r.value < 0.2


# ---------------------------------------------------------------- nearest-neighbour ratio


def test_nearest_neighbour_ratio():
    train = torch.randn(300, 1, 4, 4, generator=_gen())
    held = torch.randn(100, 1, 4, 4, generator=_gen(1))
    assert nearest_neighbour_ratio(held, train, held).value == 1.0
    copies = nearest_neighbour_ratio(train[:50], train, held)
    assert copies == Estimate(0.0, 0.0)
    off = nearest_neighbour_ratio(held + 3.0, train, held)
    assert off.value > 2 and 0 < off.se < 0.2
    # hand example: held-out items at distance 1 and 3 (RMS over D = 1), samples at 4
    train, held = torch.zeros(1, 1, 1, 1), torch.tensor([1.0, 3.0]).reshape(2, 1, 1, 1)
    samples = torch.full((3, 1, 1, 1), -4.0)
    assert nearest_neighbour_ratio(samples, train, held).value == 2.0


# ---------------------------------------------------------------- bad input


def _img(n=10, size=32, fill=0.0):
    return torch.full((n, 1, size, size), fill)


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: frechet_distance(torch.zeros(1, 4), torch.zeros(3, 4)), "samples"),
        (lambda: frechet_distance(torch.zeros(3, 4), torch.zeros(1, 4)), "reference"),
        (lambda: frechet_distance(torch.zeros(3, 4), torch.zeros(3, 5)), "reference"),
        (lambda: frechet_distance(torch.zeros(5), torch.zeros(3, 4)), "samples"),
        (lambda: frechet_distance(torch.full((3, 4), math.nan), torch.zeros(3, 4)), "samples"),
        (lambda: frechet_distance(torch.zeros(3, 4), torch.full((3, 4), math.inf)), "reference"),
        (lambda: frechet_distance(torch.zeros(3, 4), torch.zeros(3, 4), n_boot=1), "n_boot"),
        (lambda: frechet_distance(torch.zeros(3, 4), torch.zeros(3, 4), generator=0), "generator"),
        (lambda: precision_recall(torch.zeros(3, 2), torch.zeros(9, 2)), "samples"),
        (lambda: precision_recall(torch.zeros(9, 2), torch.zeros(9, 2), k=0), "k"),
        (lambda: precision_recall(torch.zeros(9, 2), torch.zeros(9, 2), k=True), "k"),
        (lambda: precision_recall(torch.zeros(9, 2), torch.zeros(9, 1)), "reference"),
        (lambda: nearest_neighbour_ratio(_img(), _img(), _img(size=16)), "held_out"),
        (lambda: nearest_neighbour_ratio(_img(), _img(fill=math.nan), _img()), "train"),
        (lambda: nearest_neighbour_ratio(_img(), _img(), _img()), "held_out"),  # all copies
        (lambda: nearest_neighbour_ratio(torch.zeros(3, 4), _img(), _img()), "samples"),
        (lambda: sample_quality(_img(), _img(), _img(), n=3), "n"),
        (lambda: sample_quality(_img(3), _img(), _img()), "samples"),
        (lambda: sample_quality(_img(), _img(), _img(size=16)), "held_out"),
        (lambda: sample_quality(_img(), _img(fill=math.inf), _img()), "train"),
        (lambda: sample_quality(_img(), _img(), _img(), generator="0"), "generator"),
    ],
)
def test_feature_metric_errors(call, word):
    with pytest.raises(ValueError, match=word):
        call()
