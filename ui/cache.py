"""Bounded caches around the library calls the pages make, keyed by the frozen specs.

Everything heavy is built once per distinct spec and shared read-only by all sessions
(st.cache_resource: no copy per rerun); every cache has max_entries. Library ValueErrors pass
through unchanged (nothing is cached for them), so pages can show them with st.error.
Display objects live on the CPU; `process` is the one object moved to the chosen device.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from rgdiff_core import viz
from rgdiff_core.bases import BASES
from rgdiff_core.data import load_dataset, load_images
from rgdiff_core.process import Process
from rgdiff_core.schedules import Schedule, stiffness
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_basis,
    build_prior,
    build_schedule,
    component_statistics,
)

N_T = 101  # time grid of the schedule curves

# Uploaded image sets by content digest, filled by the sidebar before any cache reads them.
_UPLOADS: OrderedDict[str, torch.Tensor] = OrderedDict()
_MAX_UPLOAD_SETS = 8
_LABELS: OrderedDict[str, np.ndarray] = OrderedDict()  # custom-order labels by digest
_MAX_LABEL_SETS = 32


# ---------------------------------------------------------------- data


@st.cache_resource(max_entries=8, show_spinner=False)
def decode_uploads(files: tuple[bytes, ...], size: int) -> torch.Tensor:
    """Uploaded image files -> (N, 1, size, size) in [-1, 1]; ValueError names a bad file."""
    return load_images(list(files), size)


def _keep(store: OrderedDict, key: str, value, limit: int) -> str:
    """store[key] = value as the newest entry, dropping the oldest beyond `limit`; key."""
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)
    return key


def register_uploads(files: tuple[bytes, ...], size: int) -> str:
    """Decode uploads (ValueError on a bad file) and return the digest DataSpec.upload keeps."""
    images = decode_uploads(files, size)
    digest = hashlib.sha1(b"".join(hashlib.sha1(f).digest() for f in files)).hexdigest()[:16]
    return _keep(_UPLOADS, f"{digest}-{size}", images, _MAX_UPLOAD_SETS)


def register_labels(labels: np.ndarray) -> str:
    """Keep custom-order labels (D,) float64 and return the digest ScheduleSpec.labels keeps."""
    arr = np.array(labels, dtype=np.float64).reshape(-1)  # a copy: frozen below
    key = hashlib.sha1(arr.tobytes()).hexdigest()[:16] + f"-{arr.size}"
    arr.flags.writeable = False
    return _keep(_LABELS, key, arr, _MAX_LABEL_SETS)


def custom_labels(key: str) -> np.ndarray | None:
    """The registered labels under `key`, or None (never registered, or dropped)."""
    return _LABELS.get(key) if key else None


def data_key(d: DataSpec) -> DataSpec:
    """The part of a DataSpec that the data themselves depend on: dataset, size and uploads,
    not the device or the seed (so sessions with different seeds share one copy: the glyphs
    are 246 MB in float32)."""
    return DataSpec(dataset=d.dataset, size=d.size, upload=d.upload)


def dataset(d: DataSpec) -> torch.Tensor:
    """The training split (N, 1, size, size) on the CPU; read-only."""
    return _dataset(data_key(d))


@st.cache_resource(max_entries=8, show_spinner="Loading data…")
def _dataset(d: DataSpec) -> torch.Tensor:
    if d.dataset == "upload":
        if d.upload not in _UPLOADS:
            raise ValueError(
                "no uploaded images: add image files in the sidebar, or pick a built-in dataset"
            )
        return _UPLOADS[d.upload]
    return load_dataset(d.dataset, d.size)


def _data_key(d: DataSpec) -> DataSpec:
    """The part of a DataSpec that a data-free object depends on (size only)."""
    return DataSpec(dataset="", size=d.size)


# ---------------------------------------------------------------- basis, prior, statistics


@st.cache_resource(max_entries=16, show_spinner="Building the basis…")
def _basis(b: BasisSpec, d: DataSpec):
    return build_basis(b, d.shape, dataset(d) if BASES[b.name].needs_data else None)


def basis(d: DataSpec, b: BasisSpec):
    """The basis on the CPU (PCA is fitted on the dataset; the others depend on size only)."""
    return _basis(b, data_key(d) if BASES[b.name].needs_data else _data_key(d))


def prior(d: DataSpec, b: BasisSpec, p: PriorSpec):
    """The prior on the CPU (it depends on the data, not on the device or seed)."""
    return _prior(data_key(d), b, p)


@st.cache_resource(max_entries=16, show_spinner="Fitting the prior…")
def _prior(d: DataSpec, b: BasisSpec, p: PriorSpec):
    return build_prior(p, basis(d, b), dataset(d))


def stats(d: DataSpec, b: BasisSpec, p: PriorSpec):
    """The data's component statistics in this basis and prior (rgdiff_core.specs)."""
    return _stats(data_key(d), b, p)


@st.cache_resource(max_entries=16, show_spinner="Measuring component variances…")
def _stats(d: DataSpec, b: BasisSpec, p: PriorSpec):
    return component_statistics(basis(d, b), dataset(d), prior(d, b, p))


def data_stats(d: DataSpec, b: BasisSpec) -> tuple[np.ndarray, np.ndarray]:
    """(mean, lambda) (D,) float64 of the basis coefficients of the data; lambda floored.
    They do not depend on the prior: any prior's statistics carry them."""
    st_ = stats(d, b, PriorSpec("white"))
    return st_.mean.numpy(), st_.lam.numpy()


@dataclass(frozen=True)
class ScheduleInfo:
    """A built schedule with the per-component numbers the pages plot (all (D,) float64).

    lam: data variance of each basis coefficient; v = lam / prior std^2 (data variance of the
    whitened component); labels: the ordering variable (None for scalar schedules)."""

    schedule: Schedule
    lam: np.ndarray
    v: np.ndarray
    labels: np.ndarray | None

    @property
    def order_labels(self) -> np.ndarray:
        """The labels, or variance order (-log lambda) for a scalar schedule: what the pages
        sort and colour components by."""
        return self.labels if self.labels is not None else -np.log(self.lam)


def _custom_labels(s: ScheduleSpec) -> np.ndarray | None:
    if s.family != "soft" or s.order != "custom":
        return None
    labels = custom_labels(s.labels)
    if labels is None:
        raise ValueError("the custom labels are no longer loaded: load the labels file again")
    return labels.copy()


def seedless(spec: ProcessSpec) -> ProcessSpec:
    """The spec with seed 0: the key of what a run's seed does not change (the process, its
    schedule views, the step advisor, the prior term). Every session draws its own seed, and
    a key with the seed made each of them build these again (the advisor alone took 0.5-0.8 s
    of CPU per new seed on a shipped network)."""
    return dataclasses.replace(spec, data=dataclasses.replace(spec.data, seed=0))


def schedule(d: DataSpec, b: BasisSpec, p: PriorSpec, s: ScheduleSpec) -> ScheduleInfo:
    """The built schedule and its per-component numbers (on the CPU, whatever the seed or
    device)."""
    return _schedule(data_key(d), b, p, s)


@st.cache_resource(max_entries=32, show_spinner=False)
def _schedule(d: DataSpec, b: BasisSpec, p: PriorSpec, s: ScheduleSpec) -> ScheduleInfo:
    st_ = stats(d, b, p)
    sched = build_schedule(s, basis(d, b), st_, _custom_labels(s))
    labels = None if s.scalar else sched.labels.numpy()
    return ScheduleInfo(sched, st_.lam.numpy(), st_.v.numpy(), labels)


def process(spec: ProcessSpec) -> Process:
    """Basis + prior + schedule on the chosen device (copies, so the CPU cache stays put);
    one object for every seed."""
    return _process(seedless(spec))


@st.cache_resource(max_entries=16, show_spinner=False)
def _process(spec: ProcessSpec) -> Process:
    d = spec.data
    bas, pri = basis(d, spec.basis), prior(d, spec.basis, spec.prior)
    sched = schedule(d, spec.basis, spec.prior, spec.schedule).schedule
    if d.device != "cpu":
        bas, pri = copy.deepcopy(bas).to(d.device), copy.deepcopy(pri).to(d.device)
    return Process(bas, pri, sched)


# ---------------------------------------------------------------- schedule views


@dataclass(frozen=True)
class Curves:
    t: np.ndarray  # (T,)
    gamma: np.ndarray  # (T, D)
    log_snr: np.ndarray  # (T, D) true log-SNR


def curves(spec: ProcessSpec) -> Curves:
    """γ and the true log-SNR of every component on N_T times (one object for every seed)."""
    return _curves(seedless(spec))


@st.cache_resource(max_entries=32, show_spinner=False)
def _curves(spec: ProcessSpec) -> Curves:
    info = schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    t, gamma, log_snr = viz.schedule_curves(info.schedule, len(info.v), info.v, N_T)
    return Curves(t, gamma, log_snr)


def schedule_stiffness(spec: ProcessSpec) -> dict:
    """rgdiff_core's stiffness summary of the schedule (one object for every seed)."""
    return _schedule_stiffness(seedless(spec))


@st.cache_resource(max_entries=32, show_spinner=False)
def _schedule_stiffness(spec: ProcessSpec) -> dict:
    info = schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    return stiffness(info.schedule, grid=1001)


def uploaded_schedule_views(
    sched: Schedule, d: DataSpec, b: BasisSpec, p: PriorSpec
) -> tuple[ScheduleInfo, Curves, dict]:
    """(info, curves, stiffness) of a schedule loaded from a file (not cached: files are
    rare); ValueError when its size does not fit the current basis."""
    bas = basis(d, b)
    if sched.dim is not None and sched.dim != bas.dim:
        raise ValueError(
            f"the file's schedule has {sched.dim} components but the current basis has "
            f"{bas.dim} (image size {d.size}); change the image size or load a matching file"
        )
    st_ = stats(d, b, p)
    labels = getattr(sched, "labels", None)
    info = ScheduleInfo(
        sched, st_.lam.numpy(), st_.v.numpy(), None if labels is None else labels.numpy()
    )
    t, gamma, log_snr = viz.schedule_curves(sched, bas.dim, info.v, N_T)
    return info, Curves(t, gamma, log_snr), stiffness(sched, grid=1001)


# ---------------------------------------------------------------- images and spectra


@st.cache_resource(max_entries=16, show_spinner=False)
def prior_and_data_samples(d: DataSpec, b: BasisSpec, p: PriorSpec, n: int = 256):
    """n prior samples and n data samples (CPU), and the RAPSD (k, P) of each set."""
    gen = torch.Generator().manual_seed(d.seed)
    x_prior = viz.prior_samples(basis(d, b), prior(d, b, p), n, generator=gen).float()
    data = dataset(d)
    idx = torch.randperm(len(data), generator=gen)[:n]
    x_data = data[idx]
    spectra = {name: viz.rapsd_arrays(x) for name, x in (("data", x_data), ("prior", x_prior))}
    return x_prior, x_data, spectra


def image(d: DataSpec, index: int) -> torch.Tensor:
    """One data item (1, 1, size, size); ValueError for an index out of range."""
    data = dataset(d)
    if not 0 <= index < len(data):
        raise ValueError(f"image index must be in 0..{len(data) - 1}, got {index}")
    return data[index : index + 1]


@st.cache_resource(max_entries=32, show_spinner=False)
def noised_strip(spec: ProcessSpec, x0_key: str, _x0: torch.Tensor, times: tuple[float, ...]):
    """x_t (T, 1, H, W) on the CPU at each time with one noise draw (seed of the DataSpec).

    `x0_key` identifies the clean image `_x0` (not hashed)."""
    proc = process(spec)
    u = proc.encode(_x0.to(proc.device))
    frames = [proc.decode(viz.noised(proc, u, t, spec.data.seed)[0]).cpu() for t in times]
    return torch.cat(frames)


@st.cache_resource(max_entries=32, show_spinner=False)
def noising_gif(
    spec: ProcessSpec, x0_key: str, _x0: torch.Tensor, times: tuple[float, ...], zoom: int
) -> bytes:
    """Animated GIF of x_t over `times`, frames enlarged `zoom` times."""
    frames = noised_strip(spec, x0_key, _x0, times)
    return viz.encode_gif([viz.upscale(viz.to_uint8(f), zoom) for f in frames], duration_ms=90)


def device_label(name: str) -> str:
    return "CUDA (" + torch.cuda.get_device_name(0) + ")" if name == "cuda" else "CPU"
