"""The shipped glyph classifier and the sample-quality metrics validated on glyph images.

Rows, n = 400 images each against the first 10 000 training images (the reference of FD and
precision/recall is 400 of them, the same 400 for every row; the nearest-neighbour ratio
searches all 10 000) and 400 other held-out images:

- held-out: glyphs test images 0..399 (new draws from the data distribution);
- gaussian: the Gaussian fitted to the 10 000 training images (exact ``GaussianDenoiser.fit``
  on a DCT / data-prior / variance-order process), sampled with ``ancestral_corrected`` in 50
  steps: all second-order structure of the data and nothing beyond it;
- blur (Gaussian, sigma 0.5, 0.6, 0.7 px), noise (sigma 0.1, 0.15, 0.2) and shrink (x 0.9, 0.8,
  0.7) of the held-out images: mild, still plainly digits (at blur 1 px, noise 0.3 or shrink
  0.5 some metrics rank them with the Gaussian or below: see bench/results/metrics.md);
- copies: training images 9600..9999 themselves; and, separately, the samples of the exact
  empirical denoiser of 500 training images.

bench/bench_metrics.py prints the same rows at n = 1000 (bench/results/metrics.md).
"""

import hashlib
import json
import math

import pytest
import torch
import torch.nn.functional as F

from rgdiff_core import glyphs
from rgdiff_core.classifier import (
    CLASSIFIER_PATH,
    classifier_features,
    classifier_outputs,
    load_classifier,
)
from rgdiff_core.data import load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.metrics import (
    frechet_distance,
    nearest_neighbour_ratio,
    precision_recall,
    sample_quality,
)
from rgdiff_core.samplers import sample
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)

N, MEMORY, N_BOOT = 400, 10_000, 50
LADDERS = {"blur": (0.5, 0.6, 0.7), "noise": (0.1, 0.15, 0.2), "shrink": (0.9, 0.8, 0.7)}
SPEC = ProcessSpec(
    DataSpec("glyphs", 32),
    BasisSpec("dct"),
    PriorSpec("data"),
    ScheduleSpec(order="variance", softness=1.0, clip=True),
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def blur(x, sigma):
    """Separable Gaussian blur of sigma px (radius ceil(3 sigma)), edges replicated."""
    r = math.ceil(3 * sigma)
    w = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    w = w / w.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), w.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), w.view(1, 1, -1, 1))


def corrupt(x, kind, strength, generator):
    if kind == "blur":
        return blur(x, strength)
    if kind == "noise":
        return x + strength * torch.randn(x.shape, generator=generator)
    return strength * x


@pytest.fixture(scope="module")
def data():
    train = load_dataset("glyphs", 32, "train", n=MEMORY)
    x_test, y_test = load_dataset("glyphs", 32, "test", labels=True)
    return train, x_test, y_test


@pytest.fixture(scope="module")
def rows(data):
    train, x_test, _ = data
    held = x_test[:N]
    process = build_process(SPEC, train)
    gauss = sample(
        process, GaussianDenoiser.fit(process, train), N, 50, "ancestral_corrected", _gen()
    )
    out = {"held-out": held, "gaussian": gauss, "copies": train[-N:]}
    noise = _gen(1)
    for kind, strengths in LADDERS.items():
        for s in strengths:
            out[f"{kind} {s}"] = corrupt(held, kind, s, noise)
    return out


@pytest.fixture(scope="module")
def quality(data, rows):
    train, x_test, _ = data
    reference_held_out = x_test[5000 : 5000 + N]
    # one generator seed per row: every row is scored against the same 400 training images
    return {
        name: sample_quality(x, train, reference_held_out, n=N, n_boot=N_BOOT, generator=_gen())
        for name, x in rows.items()
    }


# ---------------------------------------------------------------- the shipped classifier


def test_shipped_classifier_file_and_sidecar():
    assert CLASSIFIER_PATH.stat().st_size <= 2_000_000
    state = torch.load(CLASSIFIER_PATH, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in state.values())
    info = json.loads(CLASSIFIER_PATH.with_suffix(".json").read_text())
    assert info["sha256"] == hashlib.sha256(CLASSIFIER_PATH.read_bytes()).hexdigest()
    n_params = sum(v.numel() for v in state.values())
    assert info["architecture"]["parameters"] == n_params and info["bytes"] <= 2_000_000
    assert info["architecture"]["features"] == 128 and info["seed"] == 0
    assert info["test_accuracy"] >= 0.98 and info["command"].startswith("python scripts/")
    # trained on the glyphs of this version: new pixels need a retrained classifier
    assert info["glyphs_version"] == glyphs.VERSION
    log = CLASSIFIER_PATH.with_suffix(".log").read_text()
    assert f"accuracy {info['test_accuracy']:.4f}" in log


def test_classifier_accuracy_and_sizes(data):
    _, x_test, y_test = data
    feats, logits = classifier_outputs(x_test[:2000])
    assert feats.shape == (2000, 128) and logits.shape == (2000, 10)
    assert (logits.argmax(1) == y_test[:2000]).double().mean() >= 0.98
    # other sizes are resized to 32 px first
    for size, floor in ((64, 0.98), (16, 0.95)):
        x, y = load_dataset("glyphs", size, "test", n=1000, labels=True)
        assert (classifier_outputs(x)[1].argmax(1) == y).double().mean() >= floor
    assert load_classifier() is load_classifier()  # loaded once, then cached
    with pytest.raises(ValueError, match="x"):
        classifier_features(torch.zeros(4, 1, 8, 8))  # too small to mean anything
    with pytest.raises(ValueError, match="x"):
        classifier_features(torch.zeros(4, 3, 32, 32))


# ---------------------------------------------------------------- the metrics' ranking


def test_held_out_data_scores_best(quality):
    held = quality["held-out"]
    for name, q in quality.items():
        if name not in ("held-out", "copies"):
            assert q["fd"] > held["fd"], name
        # precision / recall measure support, not density: mild corruptions may tie, not win
        for key in ("precision", "recall"):
            assert held[key] >= q[key] - 2 * q[f"{key}_se"], (name, key)
    assert held["precision"] > 0.8 and held["recall"] > 0.8 and held["confidence"] > 0.99
    assert abs(held["nn_ratio"] - 1) < min(0.1, 3 * held["nn_ratio_se"])
    assert held["fd"] < 2 * held["fd_held_out"]  # the yardstick: held-out vs training images


def test_fitted_gaussian_scores_worst(quality):
    gauss = quality["gaussian"]
    others = {name: q for name, q in quality.items() if name != "gaussian"}
    assert all(gauss["fd"] > q["fd"] for q in others.values())
    assert all(gauss["precision"] < q["precision"] for q in others.values())
    assert all(gauss["confidence"] < q["confidence"] for q in others.values())
    assert gauss["fd"] > 10 * quality["held-out"]["fd"] + 3 * gauss["fd_se"]
    assert gauss["recall"] < quality["held-out"]["recall"] - 3 * gauss["recall_se"]
    assert gauss["nn_ratio"] > 1.3  # off the data


@pytest.mark.parametrize("kind", sorted(LADDERS))
def test_corruptions_get_monotonically_worse(quality, kind):
    ladder = [quality["held-out"]] + [quality[f"{kind} {s}"] for s in LADDERS[kind]]
    fd = [q["fd"] for q in ladder]
    assert fd == sorted(fd) and len(set(fd)) == 4, fd
    # blur and shrink keep the images on the data's manifold but cover less of it: recall falls,
    # precision stays within its s.e. at these strengths; noise moves them off it
    keys = ("recall", "precision") if kind == "noise" else ("recall",)
    for key in keys:
        values = [q[key] for q in ladder[1:]]
        assert values == sorted(values, reverse=True) and len(set(values)) == 3, (key, values)
        assert ladder[-1][key] < ladder[0][key] - 2 * ladder[-1][f"{key}_se"], key


def test_copies_of_training_images_have_nearest_neighbour_ratio_zero(data, quality):
    copies, held = quality["copies"], quality["held-out"]
    assert copies["nn_ratio"] == 0.0 and copies["nn_ratio_se"] == 0.0
    # FD cannot see copying: training images are perfect samples of the distribution
    assert copies["fd"] < held["fd"] + 2 * held["fd_se"]
    # the exact empirical denoiser reproduces its training items
    train, x_test, _ = data
    memory = train[:500]
    process = build_process(SPEC, memory)
    samples = sample(process, EmpiricalDenoiser(process, memory), 100, 50, generator=_gen())
    ratio = nearest_neighbour_ratio(samples, train, x_test[5000 : 5000 + N], generator=_gen())
    assert ratio.value < 0.05


def test_bootstrap_standard_errors_match_the_spread_of_independent_sets(data):
    """s.e. against the standard deviation over 12 disjoint random sets of 200 samples and 200
    training images each: conservative (up to ~2.5 x) near the data, where FD and precision
    sit near their floors, close where the samples are off it (Gaussian draws, here directly
    from N(mean, cov) of the training images)."""
    train, x_test, _ = data
    g = _gen(2)
    flat = train.flatten(1).double()
    cov = torch.cov(flat.T) + 1e-6 * torch.eye(flat.shape[1], dtype=torch.float64)
    draws = flat.mean(0) + torch.randn(2400, flat.shape[1], generator=g, dtype=torch.float64) @ (
        torch.linalg.cholesky(cov).T
    )
    f_ref = classifier_features(train[torch.randperm(MEMORY, generator=g)[:2400]])
    sets = {
        "held-out": classifier_features(x_test[torch.randperm(10_000, generator=g)[:2400]]),
        "gaussian": classifier_features(draws.float().reshape(-1, 1, 32, 32)),
    }
    for name, f_s in sets.items():
        fd, prec = [], []
        for i in range(12):
            part = slice(200 * i, 200 * (i + 1))
            fd.append(frechet_distance(f_s[part], f_ref[part], n_boot=N_BOOT, generator=_gen(i)))
            prec.append(
                precision_recall(f_s[part], f_ref[part], n_boot=N_BOOT, generator=_gen(i))[0]
            )
        for label, est in (("fd", fd), ("precision", prec)):
            spread = torch.tensor([e.value for e in est]).std().item()
            mean_se = sum(e.se for e in est) / len(est)
            assert 0.6 < mean_se / spread < 3.0, (name, label, mean_se, spread)
