"""Sampling experiments: a run with a bounded recorded trajectory, softness sweeps with one
noise seed, and the cheap metrics of the Compare page.

A run draws n samples with `samplers.sample_latents` and a fresh generator seeded `seed` on the
process's device, so two runs with the same seed and dimension D start from the same terminal
noise z_1 (whitened), whatever their basis, prior, schedule or softness. The `Recorder` is the
sampler's callback: it keeps at most `max_frames` frames (uniform over the steps, first and
last included) of the first `record` samples, each frame holding

    x_t   = decode(z_s)       after the step, at time s (the time shown)
    x0_hat = decode(û₀(z_t))  the denoiser's estimate the step used, at time t = s + h,

on the CPU. It also times the run, counts denoiser evaluations, and enforces an optional time
limit by raising `SamplingCancelled`; whatever stopped a run, `Recorder.result(cancelled=True)`
returns the partial trajectory, with the last estimate as its samples.

Metrics (metrics.py): RAPSD log-error and sliced Wasserstein distance against held-out data,
nearest-neighbour distance to the training set (memorisation: 0 for a copy; compare with the
held-out set's own distance to the training set). `spectrum_check` compares the sampled RAPSD
of Gaussian-field samples with the true spectrum, bin by bin, in units of the Monte-Carlo
standard error of the per-image mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor

from .data import gaussian_field_spectrum
from .metrics import (
    nearest_neighbour_distance,
    radial_average,
    rapsd_log_error,
    sliced_wasserstein,
)
from .samplers import (
    MAX_STEPS,
    SAMPLERS,
    SamplingCancelled,
    StepInfo,
    nfe_count,
    sample_latents,
)

__all__ = [
    "Trajectory",
    "SamplingRun",
    "Recorder",
    "SweepState",
    "run_sampling",
    "softness_sweep",
    "frame_steps",
    "run_memory_bytes",
    "max_batch",
    "committed_groups",
    "group_log10_snr",
    "compare_metrics",
    "reference_distance",
    "true_field_rapsd",
    "spectrum_check",
    "SWEEP_SOFTNESS",
    "MAX_FRAMES",
]

MAX_FRAMES = 50
SWEEP_SOFTNESS = (math.inf, 3.0, 1.0, 0.3, 0.1)  # diffusion -> autoregressive


@dataclass
class Trajectory:
    """Recorded frames: t (F,) time of x_t; t_hat (F,) time of the estimate; step (F,) steps
    done; x_t and x0_hat (F, R, C, H, W) float32 on the CPU for the first R samples."""

    t: np.ndarray
    t_hat: np.ndarray
    step: np.ndarray
    x_t: Tensor
    x0_hat: Tensor

    def __len__(self) -> int:
        return len(self.t)


@dataclass
class SamplingRun:
    """One sampling run. samples (n, C, H, W) float32 CPU: the output, or for a cancelled run
    the last estimate x0_hat. nfe counts actual denoiser evaluations."""

    samples: Tensor
    trajectory: Trajectory
    n: int
    steps: int
    steps_done: int
    method: str
    seed: int
    nfe: int
    wall_s: float
    device: str
    cancelled: bool = False
    reason: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def steps_per_s(self) -> float:
        return self.steps_done / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def images_per_s(self) -> float:
        return self.n / self.wall_s if self.wall_s > 0 and not self.cancelled else float("nan")


def frame_steps(steps: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """Step indices (0-based) to record: up to max_frames, uniform, first and last included."""
    if max_frames <= 0 or steps <= 0:
        return np.zeros(0, dtype=np.int64)
    k = min(int(max_frames), int(steps))
    return np.unique(np.round(np.linspace(0, steps - 1, k)).astype(np.int64))


class _Counted:
    """A denoiser wrapper counting evaluations (the samplers only call it)."""

    def __init__(self, denoiser):
        self.denoiser, self.count = denoiser, 0

    def __call__(self, z, t, state=None):
        self.count += 1
        return self.denoiser(z, t, state=state)


class Recorder:
    """Sampler callback recording a bounded trajectory (module docstring).

    on_step(StepInfo) is called after every step (progress, previews); it may raise
    SamplingCancelled. time_limit: seconds, then SamplingCancelled.
    """

    def __init__(
        self,
        process,
        n: int,
        steps: int,
        record: int = 16,
        max_frames: int = MAX_FRAMES,
        on_step: Callable | None = None,
        time_limit: float | None = None,
    ):
        self.process, self.n, self.steps = process, n, steps
        self.record = max(0, min(int(record), n))
        self.wanted = set(frame_steps(steps, max_frames if self.record else 0).tolist())
        self.on_step, self.time_limit = on_step, time_limit
        self.frames: list[tuple[float, float, int, Tensor, Tensor]] = []
        self.steps_done = 0
        self.last_x0_hat: Tensor | None = None
        self.counter: _Counted | None = None
        self.start = time.perf_counter()
        self.h = 1.0 / steps

    def __call__(self, info: StepInfo) -> None:
        self.steps_done = info.done
        self.last_x0_hat = info.x0_hat
        if info.step in self.wanted:
            r = self.record
            with torch.inference_mode():
                x_t = self.process.decode(info.z[:r]).float().cpu()
                x_hat = self.process.decode(info.x0_hat[:r]).float().cpu()
            self.frames.append((float(info.t), float(info.t) + self.h, info.done, x_t, x_hat))
        elapsed = time.perf_counter() - self.start
        if self.on_step is not None:
            self.on_step(replace(info, elapsed=elapsed))
        if self.time_limit is not None and elapsed > self.time_limit and info.done < self.steps:
            raise SamplingCancelled(f"time limit of {self.time_limit:g} s reached")

    def trajectory(self) -> Trajectory:
        shape = (0, self.record, *self.process.shape)
        if not self.frames:
            empty = torch.zeros(shape)
            return Trajectory(np.zeros(0), np.zeros(0), np.zeros(0, np.int64), empty, empty)
        t, t_hat, step, x_t, x_hat = zip(*self.frames, strict=True)
        return Trajectory(
            np.array(t), np.array(t_hat), np.array(step), torch.stack(x_t), torch.stack(x_hat)
        )

    def result(
        self,
        u: Tensor | None = None,
        method: str = "",
        seed: int = 0,
        cancelled: bool = False,
        reason: str = "",
    ) -> SamplingRun:
        """The run so far. u: the final whitened samples; None for a stopped run (the last
        estimate stands in; zeros = the prior mean if no step finished)."""
        wall = time.perf_counter() - self.start
        if u is None:
            u = self.last_x0_hat
            if u is None:
                u = torch.zeros(self.n, self.process.dim, device=self.process.device)
        with torch.inference_mode():
            samples = self.process.decode(u).float().cpu()
        nfe = (
            self.counter.count
            if self.counter is not None
            else (nfe_count(method, self.steps) if not cancelled else self.steps_done)
        )
        return SamplingRun(
            samples,
            self.trajectory(),
            self.n,
            self.steps,
            self.steps_done,
            method,
            seed,
            nfe,
            wall,
            str(self.process.device),
            cancelled,
            reason,
        )


def _check_run(n, steps, method, seed):
    if method not in SAMPLERS:
        raise ValueError(f"method must be one of {sorted(SAMPLERS)}, got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (batch) must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def run_sampling(
    process,
    denoiser,
    n: int,
    steps: int,
    method: str = "ancestral",
    seed: int = 0,
    known=None,
    recorder: Recorder | None = None,
    record: int = 16,
    max_frames: int = MAX_FRAMES,
    on_step: Callable | None = None,
    time_limit: float | None = None,
) -> SamplingRun:
    """Sample n images with a recorded trajectory; see the module docstring.

    Pass your own `recorder` to read the partial run if something other than
    SamplingCancelled (e.g. a UI interrupt) escapes; otherwise one is built from record,
    max_frames, on_step and time_limit. A SamplingCancelled run returns cancelled=True.
    """
    _check_run(n, steps, method, seed)
    if recorder is None:
        recorder = Recorder(process, n, steps, record, max_frames, on_step, time_limit)
    counted = _Counted(denoiser)
    recorder.counter = counted
    gen = torch.Generator(device=process.device).manual_seed(seed)
    recorder.start = time.perf_counter()
    try:
        u = sample_latents(
            process, counted, n, steps, method, generator=gen, callback=recorder, known=known
        )
    except SamplingCancelled as err:
        return recorder.result(None, method, seed, cancelled=True, reason=str(err))
    if process.device.type == "cuda":
        torch.cuda.synchronize(process.device)
    return recorder.result(u, method, seed)


class SweepState:
    """A sweep's progress, readable when something interrupts it: finished runs and the
    recorder of the run going on."""

    def __init__(self):
        self.runs: list[SamplingRun] = []
        self.current: Recorder | None = None
        self.softness: float | None = None

    def partial(self, method: str = "", seed: int = 0) -> list[SamplingRun]:
        runs = list(self.runs)
        if self.current is not None:
            run = self.current.result(None, method, seed, cancelled=True, reason="stopped")
            run.meta["softness"] = self.softness
            runs.append(run)
        return runs


def softness_sweep(
    factory: Callable[[float], tuple],
    softnesses: Sequence[float],
    n: int,
    steps: int,
    method: str = "ancestral",
    seed: int = 0,
    record: int = 16,
    max_frames: int = MAX_FRAMES,
    on_step: Callable | None = None,
    time_limit: float | None = None,
    state: SweepState | None = None,
) -> list[SamplingRun]:
    """One run per softness, every run with the same seed (the same terminal noise).

    factory(softness) -> (process, denoiser). on_step's StepInfo carries run=index. A cancelled run
    ends the sweep: the runs so far are returned, the last one partial. time_limit is for
    the whole sweep. `state` shows the progress to a caller that may be interrupted.
    """
    if len(softnesses) == 0:
        raise ValueError("softnesses must hold at least one value")
    state = SweepState() if state is None else state
    start = time.perf_counter()
    for i, s in enumerate(softnesses):
        process, denoiser = factory(s)
        step_cb = None if on_step is None else (lambda info, i=i: on_step(replace(info, run=i)))
        left = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - start))
        state.current = Recorder(process, n, steps, record, max_frames, step_cb, left)
        state.softness = float(s)
        run = run_sampling(process, denoiser, n, steps, method, seed, recorder=state.current)
        state.current = None
        run.meta["softness"] = float(s)
        state.runs.append(run)
        if run.cancelled:
            break
    return list(state.runs)


# ---------------------------------------------------------------- memory


def run_memory_bytes(
    n: int,
    dim: int,
    frames: int = MAX_FRAMES,
    record: int = 16,
    n_items: int = 0,
    dtype_bytes: int = 4,
) -> int:
    """Rough peak memory of a run: the recorded trajectory (x_t and x0_hat of min(n, record)
    samples per frame), ~12 working (n, D) tensors (z, x0_hat, noise, per-component state,
    Heun's extra stage, float64 copies), and for the empirical denoiser its (n, N) logits,
    exponentials and weights over N training items."""
    traj = 2 * min(n, record) * dim * frames * dtype_bytes
    work = 12 * n * dim * dtype_bytes
    empirical = 3 * n * n_items * dtype_bytes
    return int(traj + work + empirical)


def max_batch(
    budget_bytes: int,
    dim: int,
    frames: int = MAX_FRAMES,
    record: int = 16,
    n_items: int = 0,
    dtype_bytes: int = 4,
) -> int:
    """Largest n with run_memory_bytes(n, ...) <= budget_bytes (at least 0)."""
    traj = 2 * record * dim * frames * dtype_bytes
    per = 12 * dim * dtype_bytes + 3 * n_items * dtype_bytes
    return max(0, int((budget_bytes - traj) // per))


# ---------------------------------------------------------------- noise state views


def group_log10_snr(process, variances, t: float, groups) -> np.ndarray:
    """Group mean of the true log10 SNR_i(t) = log10(v_i e^-gamma_i(t)) -> (G,)."""
    gamma = process.noise_state(float(t)).gamma.detach().double().cpu().reshape(-1).numpy()
    gamma = np.broadcast_to(gamma, (process.dim,))
    log_snr = (np.log(np.asarray(variances, dtype=np.float64)) - gamma) / np.log(10)
    return np.array([log_snr[idx.cpu().numpy()].mean() for _, idx in groups])


def committed_groups(process, variances, t: float, groups) -> np.ndarray:
    """(G,) bool: groups whose mean true SNR has crossed 1 at time t (already decided)."""
    return group_log10_snr(process, variances, t, groups) > 0


# ---------------------------------------------------------------- metrics


def compare_metrics(
    samples: Tensor, held_out: Tensor, train: Tensor, n_proj: int = 128, seed: int = 0
) -> dict[str, float]:
    """RAPSD log-error and sliced Wasserstein (vs held-out data), and the mean and minimum
    nearest-neighbour distance of the samples to the training set."""
    samples, held_out = samples.float().cpu(), held_out.float().cpu()
    nn = nearest_neighbour_distance(samples, train.float().cpu())
    gen = torch.Generator().manual_seed(seed)
    return {
        "rapsd_log_error": rapsd_log_error(samples, held_out),
        "sliced_wasserstein": sliced_wasserstein(samples, held_out, n_proj=n_proj, generator=gen),
        "nn_train_mean": float(nn.mean()),
        "nn_train_min": float(nn.min()),
    }


def reference_distance(held_out: Tensor, train: Tensor, n: int = 256) -> float:
    """Mean nearest-neighbour distance of up to n held-out items to the training set: what a
    new, non-memorised image scores (samples well below it copy training items)."""
    return float(nearest_neighbour_distance(held_out[:n].float(), train.float()).mean())


def true_field_rapsd(
    size: int, exponent: float = 3.0, mass: float = 1.0, scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(k)) the RAPSD of data.gaussian_field samples has in expectation."""
    k, p = radial_average(gaussian_field_spectrum(size, exponent, mass, scale))
    return k.numpy(), p.numpy()


def spectrum_check(samples: Tensor, true_power: np.ndarray, n_sigma: float = 4.0) -> dict:
    """Compare the sampled RAPSD with the true one, bin by bin for k >= 1.

    The standard error of bin k is the std over images of the per-image RAPSD / sqrt(n);
    z_k = (P_sampled - P_true) / se_k. ok: max |z_k| <= n_sigma (4 standard errors: about
    1e-3 false alarms over 16 bins). Needs at least 8 samples.
    """
    if samples.ndim != 4 or samples.shape[0] < 8:
        raise ValueError(f"samples must be a batch (n >= 8, C, H, H), got {tuple(samples.shape)}")
    power = torch.fft.fft2(samples.double().cpu(), norm="ortho").abs() ** 2
    per_image = torch.stack([radial_average(p)[1] for p in power])  # (n, K)
    n = per_image.shape[0]
    mean = per_image.mean(0).numpy()
    se = (per_image.std(0) / math.sqrt(n)).numpy()
    true_power = np.asarray(true_power, dtype=np.float64)
    if true_power.shape != mean.shape:
        raise ValueError(f"true_power must have {mean.shape[0]} bins, got {true_power.shape}")
    z = (mean[1:] - true_power[1:]) / np.maximum(se[1:], 1e-300)
    return {
        "k": np.arange(len(mean)),
        "p": mean,
        "se": se,
        "p_true": true_power,
        "z": z,
        "max_abs_z": float(np.abs(z).max()),
        "n_sigma": n_sigma,
        "ok": bool(np.abs(z).max() <= n_sigma),
        "n": n,
    }
