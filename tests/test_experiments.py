"""rgdiff_core.experiments: recorded runs, cancel, sweeps with one seed, memory caps, metrics,
and the Sampling page's correctness check: Gaussian fields sampled with the exact Gaussian
denoiser match the true spectrum within Monte-Carlo error for every basis and softness."""

import math

import numpy as np
import pytest
import torch

from rgdiff_core import experiments as ex
from rgdiff_core.bases import BASES
from rgdiff_core.data import gaussian_field_covariance, load_dataset
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser
from rgdiff_core.samplers import SamplingCancelled, nfe_count, sample
from rgdiff_core.specs import (
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)
from rgdiff_core.terminal import prior_term

SIZE = 16
FIELDS = load_dataset("fields", SIZE)[:1000]
COV = gaussian_field_covariance(SIZE)
_, P_TRUE = ex.true_field_rapsd(SIZE)


def field_process(basis_name="fourier", prior="data", softness=1.0, gamma_noise=10.0):
    """The process the app builds for the fields dataset (rgdiff_core.specs): variance order,
    clip; and the data variances v of its whitened components."""
    schedule = ScheduleSpec(order="variance", softness=softness, gamma_noise=gamma_noise, clip=True)
    spec = ProcessSpec(DataSpec("fields", SIZE), BasisSpec(basis_name), PriorSpec(prior), schedule)
    process = build_process(spec, FIELDS)
    return process, process.schedule.variances


@pytest.fixture(scope="module")
def digits_run():
    data = load_dataset("digits", SIZE)
    process, _ = field_process("dct", "white")
    return process, EmpiricalDenoiser(process, data), data


# ---------------------------------------------------------------- runs and trajectories


@pytest.mark.parametrize("method", ["ancestral", "euler_maruyama", "heun_ode"])
def test_run_records_bounded_trajectory_and_reproduces_sample(method, digits_run):
    process, den, _ = digits_run
    run = ex.run_sampling(process, den, 6, 80, method, seed=5, record=4)
    traj = run.trajectory
    assert len(traj) == ex.MAX_FRAMES and traj.x_t.shape == (50, 4, 1, SIZE, SIZE)
    assert traj.x0_hat.shape == traj.x_t.shape
    assert traj.step[0] == 1 and traj.step[-1] == 80 and traj.t[-1] == 0.0
    assert np.all(np.diff(traj.t) < 0)  # noise -> data
    assert run.nfe == nfe_count(method, 80) and not run.cancelled
    want = sample(process, den, 6, 80, method, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(run.samples, want)


def test_few_steps_record_every_step(digits_run):
    process, den, _ = digits_run
    run = ex.run_sampling(process, den, 2, 10, seed=0)
    assert list(run.trajectory.step) == list(range(1, 11))


def test_cancel_keeps_partial_trajectory(digits_run):
    process, den, _ = digits_run

    def stop_at_7(info):
        if info.step == 6:
            raise SamplingCancelled("user stop")

    run = ex.run_sampling(process, den, 3, 40, seed=0, on_step=stop_at_7)
    assert run.cancelled and run.reason == "user stop" and run.steps_done == 7
    assert run.trajectory.step.max() <= 7 and len(run.trajectory) >= 1
    assert run.samples.shape == (3, 1, SIZE, SIZE) and torch.isfinite(run.samples).all()


def test_time_limit_cancels(digits_run):
    process, den, _ = digits_run
    run = ex.run_sampling(process, den, 2, 500, seed=0, time_limit=0.0)
    assert run.cancelled and run.steps_done == 1 and "time limit" in run.reason


def test_recorder_result_after_foreign_interrupt(digits_run):
    """A UI interrupt (any exception) leaves the partial run readable from the recorder."""
    process, den, _ = digits_run

    def interrupt(info):
        if info.step == 3:
            raise KeyboardInterrupt

    rec = ex.Recorder(process, 2, 30, on_step=interrupt)
    with pytest.raises(KeyboardInterrupt):
        ex.run_sampling(process, den, 2, 30, recorder=rec)
    run = rec.result(None, "ancestral", 0, cancelled=True)
    assert run.steps_done == 4 and run.cancelled and len(run.trajectory) == 4


@pytest.mark.parametrize(
    "bad", [dict(steps=0), dict(steps=10**6), dict(n=0), dict(method="rk4"), dict(seed=-1)]
)
def test_run_rejects_bad_input(bad, digits_run):
    process, den, _ = digits_run
    kw = dict(n=2, steps=10, method="ancestral", seed=0) | bad
    with pytest.raises(ValueError):
        ex.run_sampling(process, den, **kw)


def test_sweep_uses_one_seed_per_softness(digits_run):
    _, _, data = digits_run
    built, first_z = {}, {}

    def factory(s):
        process, _ = field_process("dct", "white", softness=s)
        den = EmpiricalDenoiser(process, data)

        def spy(z, t, state=None):  # the first evaluation sees the terminal noise z_1
            first_z.setdefault(s, z.clone())
            return den(z, t, state=state)

        built[s] = (process, den)
        return process, spy

    runs = ex.softness_sweep(factory, ex.SWEEP_SOFTNESS, 3, 20, seed=11, record=2)
    assert [r.meta["softness"] for r in runs] == list(ex.SWEEP_SOFTNESS)
    for s in ex.SWEEP_SOFTNESS[1:]:
        assert torch.equal(first_z[s], first_z[ex.SWEEP_SOFTNESS[0]])
    for s, r in zip(ex.SWEEP_SOFTNESS, runs, strict=True):
        alone = ex.run_sampling(*built[s], 3, 20, seed=11)
        torch.testing.assert_close(r.samples, alone.samples)


def test_sweep_stops_at_a_cancelled_run(digits_run):
    process, den, _ = digits_run
    state = ex.SweepState()
    runs = ex.softness_sweep(
        lambda s: (process, den), (math.inf, 1.0, 0.1), 2, 100, time_limit=0.0, state=state
    )
    assert len(runs) == 1 and runs[0].cancelled


def test_memory_estimate_and_max_batch():
    need = ex.run_memory_bytes(16, 1024, 50, 16, n_items=1528)
    assert need == 2 * 16 * 1024 * 50 * 4 + 12 * 16 * 1024 * 4 + 3 * 16 * 1528 * 4
    most = ex.max_batch(2 * 1024**3, 1024, 50, 16, n_items=1528)
    assert ex.run_memory_bytes(most, 1024, 50, 16, 1528) <= 2 * 1024**3
    assert ex.run_memory_bytes(most + 1, 1024, 50, 16, 1528) > 2 * 1024**3


def test_committed_groups_follow_the_schedule():
    process, v = field_process("fourier", "data", softness=0.1)
    groups = process.basis.groups()
    early = ex.committed_groups(process, v, 0.999, groups)
    late = ex.committed_groups(process, v, 0.0, groups)
    assert late.all() and early.sum() <= 1
    mid = ex.committed_groups(process, v, 0.5, groups)
    assert 0 < mid.sum() < len(groups) and mid[0]  # coarse (low |k|) groups commit first


def test_compare_metrics(digits_run):
    _, _, data = digits_run
    test = load_dataset("digits", SIZE, split="test")
    copies = ex.compare_metrics(data[:32], test, data)
    assert copies["nn_train_mean"] == 0.0
    noise = ex.compare_metrics(torch.randn(32, 1, SIZE, SIZE), test, data)
    assert noise["rapsd_log_error"] > copies["rapsd_log_error"]
    assert noise["sliced_wasserstein"] > copies["sliced_wasserstein"]
    assert ex.reference_distance(test, data) > 0.05


# ---------------------------------------------------------------- spectrum check (issue bar)


@pytest.mark.parametrize("basis_name", sorted(BASES))
def test_gaussian_fields_match_true_spectrum(basis_name):
    """Exact Gaussian denoiser + probability-flow ODE: within MC error at every softness."""
    for softness in (math.inf, 1.0, 0.1):
        process, _ = field_process(basis_name, "data", softness)
        den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), COV)
        run = ex.run_sampling(process, den, 128, 100, "heun_ode", seed=0, record=0)
        chk = ex.spectrum_check(run.samples, P_TRUE)
        assert chk["ok"], (basis_name, softness, chk["max_abs_z"])


def test_spectrum_check_catches_wrong_covariance():
    process, _ = field_process("fourier", "data", 1.0)
    wrong = gaussian_field_covariance(SIZE, exponent=2.0)
    den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), wrong)
    run = ex.run_sampling(process, den, 128, 100, "heun_ode", seed=0, record=0)
    assert not ex.spectrum_check(run.samples, P_TRUE)["ok"]


def test_spectrum_check_catches_too_few_steps():
    """The plug-in ancestral step under-disperses at few steps of a stiff schedule."""
    process, _ = field_process("fourier", "data", 0.1)
    den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), COV)
    run = ex.run_sampling(process, den, 128, 30, "ancestral", seed=0, record=0)
    assert not ex.spectrum_check(run.samples, P_TRUE)["ok"]


def test_spectrum_check_catches_signal_left_at_t1():
    """A white prior with gamma_noise = 3 does not reach N(0, I) at t = 1."""
    process, _ = field_process("pixel", "white", 1.0, gamma_noise=3.0)
    assert prior_term(process, FIELDS) > 1.0
    den = GaussianDenoiser(process, torch.zeros(SIZE * SIZE), COV)
    run = ex.run_sampling(process, den, 128, 100, "heun_ode", seed=0, record=0)
    assert not ex.spectrum_check(run.samples, P_TRUE)["ok"]


def test_spectrum_check_validates():
    with pytest.raises(ValueError, match="n >= 8"):
        ex.spectrum_check(torch.zeros(3, 1, SIZE, SIZE), P_TRUE)
    with pytest.raises(ValueError, match="bins"):
        ex.spectrum_check(torch.randn(8, 1, SIZE, SIZE), P_TRUE[:3])
