"""The steps the app proposes (ui.advisor: the data's means and variances as independent
components) keep the exact Gaussian of the data, with its correlations, within 2 % of its
total variance: checked with the dense route of rgdiff_core.accuracy at 16x16."""

import math

import pytest

from rgdiff_core import load_dataset
from rgdiff_core.accuracy import accuracy
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
    component_statistics,
)
from ui.advisor import STEPS_TOL, advised_steps

CASES = [
    ("digits", "wavelet", "white", 1.0, False),
    ("digits", "dct", "data", 1.0, True),
    ("shapes", "pixel", "white", math.inf, False),
    ("fields", "fourier", "data", 3.0, True),
]


@pytest.mark.parametrize("dataset, basis, prior, softness, clip", CASES)
def test_the_proposed_steps_are_within_two_percent_for_the_exact_gaussian(
    dataset, basis, prior, softness, clip
):
    x = load_dataset(dataset, 16)
    schedule = ScheduleSpec(softness=softness, clip=clip)
    spec = ProcessSpec(DataSpec(dataset, 16), BasisSpec(basis), PriorSpec(prior), schedule)
    process = build_process(spec, x)
    stats = component_statistics(process.basis, x, process.prior)
    m, s = process.prior.mean.double(), process.prior.std.double()
    steps = advised_steps(process, ((stats.mean - m) / s, stats.var / s**2), "ancestral")
    assert steps is not None and 100 < steps <= 1000
    exact = accuracy(process, x[:4000], steps, "ancestral").variance_ratio  # correlated
    assert abs(exact - 1) <= STEPS_TOL, (steps, exact)
    fewer = accuracy(process, x[:4000], steps // 2, "ancestral").variance_ratio
    assert abs(fewer - 1) > STEPS_TOL  # half the steps is not enough: the check can fail
