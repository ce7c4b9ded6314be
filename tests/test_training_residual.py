"""Training a network that starts from the Gaussian: loss weights, learning-rate schedule,
random known masks, the auto noised-end target, and residual checkpoints (docs/maths.md §4)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rgdiff_core import load_model
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers.checkpoints import load_checkpoint
from rgdiff_core.denoisers.residual import GaussianResidualDenoiser
from rgdiff_core.schedules import soft_conditioning_state
from rgdiff_core.terminal import prior_term_from_moments
from rgdiff_core.training import Trainer, train
from rgdiff_core.training.trainer import loss_weights, lr_factor, random_known
from tests.test_training import TINY as BASE

TINY = replace(
    BASE,
    steps=12,
    batch=16,
    warmup=4,
    log_every=4,
    ckpt_every=6,
    gaussian_rank=8,
    loss_weight="elbo",
    p_known=0.5,
    lr_schedule="cosine",
    gamma_noise=None,
)


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _state(inv_s, t, clip=True):
    labels = torch.arange(16, dtype=torch.float64) // 4
    log_v = torch.linspace(-2, 1, 16, dtype=torch.float64)
    return soft_conditioning_state(labels, log_v, inv_s, t, -7.0, 6.0, clip)


def test_elbo_weights_follow_the_elbo_and_skip_frozen_components():
    t = torch.tensor([0.02, 0.3, 0.6, 0.97], dtype=torch.float64)
    state = _state(torch.tensor([10.0, 1.0, 0.3, 0.0], dtype=torch.float64), t)
    w = loss_weights(state, "elbo")
    raw = state.dgamma_dt * torch.sigmoid(-state.gamma)
    assert torch.allclose(w.mean(), torch.tensor(1.0, dtype=w.dtype))
    assert torch.allclose(w, raw / raw.mean())  # one factor for the whole batch
    frozen = state.dgamma_dt == 0
    assert frozen.any() and (~frozen).any()
    assert (w[frozen] == 0).all() and (w[~frozen] > 0).all()
    # an example with only one moving component is not blown up to D times its share
    assert w.max() < 20


def test_v_weights_are_one_except_known():
    state = _state(1.0, torch.tensor([0.5, 0.5], dtype=torch.float64))
    known = torch.zeros(2, 16, dtype=torch.bool)
    known[0, :5] = True
    w = loss_weights(state, "v", known)
    assert (w[known] == 0).all() and (w[~known] == 1).all()
    we = loss_weights(state, "elbo", known)
    assert (we[known] == 0).all()


def test_cosine_learning_rate_warms_up_and_decays_to_zero():
    cfg = replace(TINY, steps=110, warmup=10)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.5)
    assert lr_factor(110, cfg) == pytest.approx(0.0, abs=1e-12)
    values = [lr_factor(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    const = replace(cfg, lr_schedule="constant")
    assert lr_factor(100, const) == 1.0


@pytest.mark.parametrize("pixel", [False, True])
def test_random_known_masks_are_order_prefixes_or_holes(pixel):
    shape = (1, 4, 4)
    labels = (torch.arange(16) % 4).double()  # column order of a 4 x 4 image
    gen = torch.Generator().manual_seed(0)
    known = random_known(labels, 400, 1.0, shape, pixel, gen)
    assert known.any(1).float().mean() > 0.9 and (~known).any(1).all()
    prefixes = holes = 0
    for row in known:
        if not row.any():
            continue
        if labels[row].max() < labels[~row].min():
            prefixes += 1
            continue
        assert pixel, "outside the pixel basis every mask is a prefix of the order"
        img = (~row).reshape(4, 4)  # the unknown hole is one rectangle
        r, c = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert img[r.min() : r.max() + 1, c.min() : c.max() + 1].all()
        holes += 1
    assert prefixes > 100 and (holes > 100) == pixel
    assert not random_known(labels, 50, 0.0, shape, pixel, gen).any()


def test_batch_known_components_are_clean_with_zero_target_and_weight():
    trainer = Trainer(TINY)
    z, gamma, v, weight = trainer.batch()
    known = torch.isneginf(gamma)
    assert known.any()
    u = trainer.u_all  # z equals some training item on the known components
    rows = known.any(1).nonzero().flatten()
    for b in rows[:3]:
        match = (u[:, known[b]] == z[b, known[b]]).all(1)
        assert match.any()
    assert (v[known] == 0).all() and (weight[known] == 0).all()
    assert torch.isfinite(weight).all() and weight.mean() > 0


def test_auto_gamma_noise_keeps_the_prior_term_small_at_every_softness():
    trainer = Trainer(TINY)
    assert trainer.gamma_noise == trainer.process.schedule.gamma_noise
    u_sq = trainer.u_all.square().mean(0)
    log_v = trainer.data_variances.log()
    one = torch.ones((), dtype=torch.float64)
    for inv_s in (0.0, 0.1, 1.0, 10.0):
        state = soft_conditioning_state(
            trainer.labels, log_v, inv_s, one, TINY.gamma_denoise, trainer.gamma_noise, True
        )
        assert prior_term_from_moments(state.gamma, u_sq) <= 0.1


def test_fresh_residual_trainer_is_the_gaussian_and_its_checkpoint_reloads(tmp_path):
    trainer = Trainer(TINY)
    den = trainer.ema_denoiser
    assert isinstance(den, GaussianResidualDenoiser) and den.config.in_channels == 2
    z = torch.randn(5, trainer.process.dim)
    state = trainer.process.noise_state(0.4, like=z)
    with torch.no_grad():
        assert torch.equal(den(z, 0.4), den.gaussian_x0(z, state.gamma.to(z)))
    result = train(TINY, tmp_path, progress=None)
    assert len(result.loss_history) == 12 and all(math.isfinite(x) for x in result.loss_history)
    process, loaded = load_model(tmp_path / "checkpoint.pt", softness=0.3)
    assert isinstance(loaded, GaussianResidualDenoiser)
    assert process.schedule.gamma_noise == pytest.approx(trainer.gamma_noise)
    for a, b in zip(loaded.low_rank(), result.denoiser.low_rank(), strict=True):
        assert torch.equal(a, b)
    result.denoiser.process = process  # same weights, same process: same output
    with torch.no_grad():
        assert torch.allclose(loaded(z, 0.6), result.denoiser(z, 0.6), atol=1e-6)
    # training moved the residual away from zero
    with torch.no_grad():
        assert not torch.equal(
            loaded(z, 0.6), loaded.gaussian_x0(z, process.noise_state(0.6, like=z).gamma.to(z))
        )


SHIPPED = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "assets" / "models").glob("*.pt")
    if load_checkpoint(p, map_location="cpu").get("denoiser") == "gaussian_residual"
)


def test_four_gaussian_residual_models_are_shipped():
    names = {p.stem for p in SHIPPED}
    assert {"glyphs_pixel_column", "glyphs_haar", "glyphs_dct", "shapes_haar_residual"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_residual_model_beats_its_own_gaussian_part(path):
    """Training added structure: on held-out images, the x0 error (ELBO-weighted over t and
    components, as the model was trained) is below that of the Gaussian it started from."""
    assert path.stat().st_size <= 10e6
    meta = json.loads(path.with_suffix(".json").read_text())
    assert "rgdiff_core.train" in meta["command"] and meta["steps"] >= 1000
    ckpt = load_checkpoint(path, map_location="cpu")
    test = load_dataset(ckpt["dataset"], ckpt["size"], "test")[:64]
    for softness in (math.inf, 0.3):
        process, den = load_model(path, softness=softness)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            u = process.encode(test)
            err_net = err_gauss = 0.0
            for t in (0.2, 0.4, 0.6, 0.8):
                state = process.noise_state(t, like=u)
                gamma = state.gamma.expand_as(u)
                alpha, sigma = state.alpha.expand_as(u), state.sigma.expand_as(u)
                z = alpha * u + sigma * torch.randn(u.shape, generator=gen)
                w = state.dgamma_dt.expand_as(u) * alpha.square()
                err_net += float((w * (den(z, t) - u).square()).sum())
                err_gauss += float((w * (den.gaussian_x0(z, gamma) - u).square()).sum())
        assert err_net < 0.95 * err_gauss, (softness, err_net, err_gauss)
