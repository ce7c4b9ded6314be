"""Settings -> objects (rgdiff_core.specs and the denoiser registry): one builder for the app,
training, checkpoints and benches; specs round-trip; bad choices raise ValueError naming them."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rgdiff_core import (
    BASES,
    BasisSpec,
    DataSpec,
    DenoiserSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_denoiser,
    build_process,
    load_dataset,
)
from rgdiff_core.denoisers.checkpoints import (
    checkpoint_spec,
    load_checkpoint,
    process_from_checkpoint,
)
from rgdiff_core.denoisers.models import UNetConfig
from rgdiff_core.specs import N_STATS, VARIANCE_FLOOR, component_statistics
from rgdiff_core.training import TrainConfig, train

MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
DATA = load_dataset("digits", 8)


def spec(basis="dct", prior="data", **schedule) -> ProcessSpec:
    return ProcessSpec(
        DataSpec("digits", 8), BasisSpec(basis), PriorSpec(prior), ScheduleSpec(**schedule)
    )


def test_specs_are_hashable_and_round_trip_through_dicts():
    s = spec(order="scale", softness=math.inf, clip=True)
    assert hash(s) == hash(ProcessSpec.from_dict(s.to_dict()))
    assert ProcessSpec.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="no fields"):
        BasisSpec.from_dict({"name": "dct", "colour": 1})


@pytest.mark.parametrize("name", sorted(BASES))
def test_basis_spec_passes_only_the_options_its_class_names(name):
    opts = BasisSpec(name, wavelet="db2", levels=2).options()
    assert set(opts) <= set(BASES[name].option_names)
    process = build_process(spec(name), DATA)
    assert process.basis.name == name and process.dim == 64


def test_statistics_come_from_the_first_n_stats_items_with_one_floor():
    process = build_process(spec("pixel", "white"), DATA)
    stats = component_statistics(process.basis, DATA, process.prior)
    # digit corners are constant: their variance is the floor, a fraction of the mean, not zero
    assert float(stats.var.min()) == 0.0
    assert float(stats.lam.min()) == pytest.approx(VARIANCE_FLOOR * float(stats.var.mean()))
    raw_v = stats.lam / process.prior.std.double() ** 2
    assert torch.equal(stats.v, raw_v.clamp_min(VARIANCE_FLOOR * float(raw_v.mean())))
    assert len(DATA) > N_STATS  # so the next line compares two different fits
    again = component_statistics(process.basis, DATA[:N_STATS], process.prior)
    torch.testing.assert_close(stats.lam, again.lam, rtol=0, atol=0)
    torch.testing.assert_close(process.schedule.variances, stats.v, rtol=1e-12, atol=0)


def test_custom_order_needs_its_labels():
    with pytest.raises(ValueError, match="custom"):
        build_process(spec(order="custom"), DATA)
    labels = torch.arange(64.0)
    process = build_process(spec(order="custom"), DATA, labels=labels)
    torch.testing.assert_close(process.schedule.labels, labels.double())


def test_scalar_families_need_no_statistics():
    process = build_process(spec(family="cosine", gamma_min=-8.0, gamma_max=6.0), DATA)
    assert process.schedule.dim is None
    assert float(process.schedule.gamma(torch.tensor(1.0))) == pytest.approx(6.0)


def test_denoiser_registry_builds_each_kind_and_names_bad_choices():
    process = build_process(spec(order="variance"), DATA)
    z = torch.randn(3, 64)
    for kind in ("empirical", "gaussian_fit"):
        den = build_denoiser(DenoiserSpec(kind), process, DATA)
        assert den(z, 0.5).shape == (3, 64)
    with pytest.raises(ValueError, match="kind must be one of"):
        build_denoiser(DenoiserSpec("oracle"), process, DATA)
    with pytest.raises(ValueError, match="Gaussian fields"):
        build_denoiser(DenoiserSpec("gaussian_true", dataset="digits"), process, DATA)
    with pytest.raises(ValueError, match="pass the training data"):
        build_denoiser(DenoiserSpec("empirical"), process)


def test_empirical_items_takes_the_first_items():
    """DenoiserSpec.items: the empirical denoiser of the first N items is that of DATA[:N]
    (its samples replay only those), 0 means all; anything else names the argument."""
    process = build_process(spec(order="variance"), DATA)
    first = build_denoiser(DenoiserSpec("empirical", items=50), process, DATA)
    assert first.items.shape[0] == 50
    assert torch.equal(first.items, process.encode(DATA[:50]))
    assert build_denoiser(DenoiserSpec("empirical"), process, DATA).items.shape[0] == len(DATA)
    z = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    # nearly clean: each x0_hat is (close to) one of the first 50 items
    _, weights = first(z, 0.0, return_weights=True)
    assert weights.shape == (4, 50)
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="items must be an integer >= 0"):
            build_denoiser(DenoiserSpec("empirical", items=bad), process, DATA)


def test_a_checkpoint_rebuilds_the_process_the_app_builds(tmp_path):
    """Training stores its ProcessSpec; the process rebuilt from the checkpoint's tensors equals
    the one build_process makes from that spec, at any softness."""
    cfg = TrainConfig(
        dataset="digits",
        size=8,
        basis="wavelet",
        basis_options={"wavelet": "haar"},
        prior="data",
        order="scale_column",
        steps=1,
        batch=4,
        warmup=1,
        device="cpu",
        model=UNetConfig(channels=8, channel_mult=(1,), num_res_blocks=1, cond_dim=8),
    )
    result = train(cfg, tmp_path, progress=None)
    ckpt = load_checkpoint(result.checkpoint)
    stored = checkpoint_spec(ckpt)
    assert stored == cfg.process_spec()
    for s in (math.inf, 1.0, 0.2):
        mine = build_process(replace(stored, schedule=replace(stored.schedule, softness=s)), DATA)
        theirs = process_from_checkpoint(ckpt, softness=s)
        torch.testing.assert_close(theirs.prior.std, mine.prior.std)
        t = torch.linspace(0, 1, 11, dtype=torch.float64)
        torch.testing.assert_close(theirs.schedule.gamma(t), mine.schedule.gamma(t))


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.pt")), ids=lambda p: p.stem)
def test_shipped_checkpoints_describe_their_process(path):
    ckpt = load_checkpoint(path)
    described = checkpoint_spec(ckpt)
    assert described.basis.name == ckpt["basis_spec"]["name"]
    assert described.schedule.order == ckpt["order"] and described.schedule.family == "soft"
    assert described.data.size == ckpt["size"]
