"""Held-out data and the metrics of samples against it (the Sampling, Compare and Conditioning
pages): the test split, the distance a held-out image keeps to the training set (the reference
for memorisation), and one table row of metrics per run.
"""

from __future__ import annotations

from typing import Any

import streamlit as st
import torch

from rgdiff_core import experiments as ex
from rgdiff_core.data import load_dataset
from rgdiff_core.likelihood import ELBO, elbo
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import cache, runs

# Held-out images and strata in t of the pages' bits/dim: 512 denoiser rows, 3.0-3.6 s for a
# shipped 32 px network on 2 threads (64 x 16 took 12.6-13.9 s, longer than the sampling it
# scores), with a Monte-Carlo s.e. of 0.03-0.06 bits/dim, below the 0.1-1.2 bits/dim that
# separate softness values. bench/bench_models.py measures the models' bits/dim on 1000 images.
N_LIKELIHOOD, N_T = 32, 8
ELBO_ESTIMATE_S = 3.0  # what one bound holds a run worker for (others' queue estimates)


def images(d: DataSpec) -> torch.Tensor:
    """The test split (the training set itself for uploads, which have no split); shared by
    every session of the same data, whatever its seed or device."""
    return _images(cache.data_key(d))


@st.cache_resource(max_entries=8, show_spinner=False)
def _images(d: DataSpec) -> torch.Tensor:
    if d.dataset == "upload":
        return cache.dataset(d)
    return load_dataset(d.dataset, d.size, split="test")


def reference_distance(d: DataSpec) -> float:
    """Mean distance of held-out images to the training set (experiments.reference_distance)."""
    return _reference_distance(cache.data_key(d))


@st.cache_resource(max_entries=8, show_spinner=False)
def _reference_distance(d: DataSpec) -> float:
    return ex.reference_distance(images(d), cache.dataset(d))


def metrics_row(run: ex.SamplingRun, d: DataSpec) -> dict[str, Any]:
    m = ex.compare_metrics(run.samples, images(d), cache.dataset(d), seed=d.seed)
    return {
        "RAPSD log-error": m["rapsd_log_error"],
        "sliced Wasserstein": m["sliced_wasserstein"],
        "NN distance to train": m["nn_train_mean"],
        "NFE": run.nfe,
        "wall time (s)": run.wall_s,
        "device": run.device,
    }


def nearest_train_distance(samples: torch.Tensor, d: DataSpec) -> float:
    """Mean over samples of the RMS pixel distance to the closest training image."""
    return ex.compare_metrics(samples, images(d), cache.dataset(d))["nn_train_mean"]


@st.cache_resource(max_entries=32, show_spinner="Bits/dim of held-out images…")
def bits_per_dim(spec: ProcessSpec, kind: str, _process, _denoiser) -> ELBO | None:
    """Negative ELBO (docs/maths.md §2c) of the first N_LIKELIHOOD held-out images under the
    process and denoiser of (spec, kind); the seed of the sidebar draws t and the noise. None
    for the empirical denoiser: it knows only training items, so its bound on held-out images
    grows without limit as gamma falls (10^5-10^11 bits/dim measured), a number that says
    nothing."""
    if kind == "empirical":
        return None
    x = images(spec.data)[:N_LIKELIHOOD]
    gen = torch.Generator(device=_process.device).manual_seed(spec.data.seed)
    # like a sampling run, the bound waits for one of the server's run workers, so many
    # sessions' bounds do not crowd the cores the queued runs share
    with runs.queued(spec.data.device, ELBO_ESTIMATE_S, status=False):
        return elbo(_process, _denoiser, x, n_t=N_T, generator=gen)


def likelihood_row(e: ELBO | None) -> dict[str, Any]:
    """The table columns of a bound; None (not computed) leaves them empty."""
    if e is None:
        keys = ("bits/dim (held-out)", "± s.e.", "L_T (nat)", "diffusion (nat)")
        return dict.fromkeys((*keys, "reconstruction (nat)"), float("nan"))
    return {
        "bits/dim (held-out)": e.bpd,
        "± s.e.": e.stderr,
        "L_T (nat)": e.prior,
        "diffusion (nat)": e.diffusion,
        "reconstruction (nat)": e.reconstruction,
    }
