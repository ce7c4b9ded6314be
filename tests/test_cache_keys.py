"""The app's caches share what does not depend on a session's seed or device: one copy of
the training and held-out data, one prior, one set of statistics and one exact denoiser per
data set, whatever seed each session draws with (the glyphs are 246 MB in float32)."""

import dataclasses

import pytest

from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec
from ui import cache, denoiser_choice, held_out

SEEDS = (101, 202)


def _specs(**data):
    return [
        ProcessSpec(DataSpec("digits", 16, seed=s, **data), BasisSpec("dct"), PriorSpec("data"))
        for s in SEEDS
    ]


@pytest.mark.parametrize(
    "get",
    [
        lambda p: cache.dataset(p.data),
        lambda p: cache.prior(p.data, p.basis, p.prior),
        lambda p: cache.stats(p.data, p.basis, p.prior),
        lambda p: held_out.images(p.data),
        lambda p: denoiser_choice.denoiser(p, "gaussian_fit"),
        lambda p: denoiser_choice.denoiser(p, "empirical"),
    ],
    ids=["dataset", "prior", "stats", "held-out images", "gaussian", "empirical"],
)
def test_one_copy_whatever_the_seed(get):
    a, b = _specs()
    assert get(a) is get(b)


def test_the_seed_still_matters_where_it_should():
    """Samples drawn from the data and prior follow the seed (the key keeps it)."""
    a, b = _specs()
    x_a = cache.prior_and_data_samples(a.data, a.basis, a.prior, 8)[0]
    x_b = cache.prior_and_data_samples(b.data, b.basis, b.prior, 8)[0]
    assert not (x_a == x_b).all()


def test_other_data_get_their_own_copy():
    a = _specs()[0]
    other = dataclasses.replace(a, data=DataSpec("digits", 8, seed=SEEDS[0]))
    assert cache.dataset(a.data) is not cache.dataset(other.data)
    assert held_out.images(a.data).shape[-1] == 16 and held_out.images(other.data).shape[-1] == 8


@pytest.mark.parametrize(
    "get",
    [
        lambda p: cache.process(p),
        lambda p: cache.schedule(p.data, p.basis, p.prior, p.schedule),
        lambda p: cache.curves(p),
        lambda p: cache.schedule_stiffness(p),
    ],
    ids=["process", "schedule", "curves", "stiffness"],
)
def test_process_views_are_one_object_whatever_the_seed(get):
    a, b = _specs()
    assert get(a) is get(b)


def test_the_device_still_has_its_own_process():
    a = _specs()[0]
    meta = dataclasses.replace(a, data=dataclasses.replace(a.data, device="meta"))
    assert cache.seedless(meta).data.device == "meta"
    assert cache.seedless(a) == cache.seedless(_specs()[1]) != cache.seedless(meta)


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_the_step_advisor_runs_once_for_every_seed(monkeypatch):
    """A new session (a new seed) on the Sampling page must not pay for the advisor again:
    its propagation took 0.5-0.8 s of CPU per seed on a shipped network."""
    from ui import advisor

    advised = _counting(monkeypatch, advisor, "advised_steps")
    predicted = _counting(monkeypatch, advisor, "accuracy")
    a, b = (dataclasses.replace(p, data=dataclasses.replace(p.data, size=8)) for p in _specs())
    answers = [
        (advisor.needed(p, "gaussian_fit", "ddim", cache.process(p)),
         advisor.ratio(p, "gaussian_fit", "ddim", 37, cache.process(p)))
        for p in (a, b)
    ]  # fmt: skip
    assert answers[0] == answers[1]
    assert len(advised) == 1 and len(predicted) == 1


def test_the_prior_term_is_measured_once_for_every_seed(monkeypatch):
    from ui import prior_term

    measured = _counting(monkeypatch, prior_term, "prior_term_from_moments")
    a, b = (dataclasses.replace(p, data=dataclasses.replace(p.data, size=8)) for p in _specs())
    assert prior_term.value(a) == prior_term.value(b)
    assert len(measured) == 1
