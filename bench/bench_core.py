"""Core library benchmarks with their budgets (issue: core library). Prints figures, not asserts.

    python bench/bench_core.py              # all budgets
    python bench/bench_core.py --peer-work  # the run timed against the authors' JAX code
    python bench/bench_core.py --device cuda

Timings are medians over repeats, and every ratio compares against a reference measured in
the same run, so a busy machine moves both sides.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_time, verdict  # noqa: E402

from rgdiff_core.bases import make_basis  # noqa: E402
from rgdiff_core.data import gaussian_field_covariance, load_dataset  # noqa: E402
from rgdiff_core.denoisers import EmpiricalDenoiser, GaussianDenoiser  # noqa: E402
from rgdiff_core.priors import make_prior  # noqa: E402
from rgdiff_core.process import Process  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402
from rgdiff_core.specs import (  # noqa: E402
    BasisSpec,
    ComponentStats,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
    build_schedule,
)

SIZE = 32
D = SIZE * SIZE
FLAT = ScheduleSpec(order="custom", softness=1.0, gamma_noise=3.0)  # all labels equal


def process_of(dataset, data, basis: BasisSpec, prior: str, schedule=FLAT, device="cpu"):
    """The library's own builder; FLAT gets all-equal custom labels."""
    spec = ProcessSpec(DataSpec(dataset, SIZE), basis, PriorSpec(prior), schedule)
    labels = torch.zeros(D) if schedule.order == "custom" else None
    return build_process(spec, data.cpu(), labels=labels, device=device)


def bench_roundtrip(device):
    print("\n== encode + add_noise + decode, 256 images 32x32 (budget <= 3x reference)")
    data = load_dataset("shapes", SIZE)[:256].to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    mat = torch.randn(D, D, device=device) / D**0.5
    flat = data.flatten(1)
    t_matmul = median_time(lambda: (flat @ mat) @ mat.T, device=device)
    t_fft = median_time(
        lambda: torch.fft.irfft2(torch.fft.rfft2(data, norm="ortho"), s=(SIZE, SIZE), norm="ortho"),
        device=device,
    )
    t_rng = median_time(
        lambda: torch.randn(flat.shape, generator=gen, device=device), device=device
    )
    print(
        f"reference: matmul {t_matmul * 1e3:.2f} ms, rfft2 round trip {t_fft * 1e3:.2f} ms; "
        f"the noise alone (torch.randn {tuple(flat.shape)}) {t_rng * 1e3:.2f} ms = "
        f"{t_rng / t_fft:.2f}x the round trip"
    )
    for name, opts, ref in [
        ("pixel", {}, t_matmul),
        ("pca", {}, t_matmul),
        ("fourier", {}, t_fft),
        ("dct", {}, t_fft),
        ("wavelet", {"wavelet": "haar"}, t_fft),
        ("wavelet", {"wavelet": "db4"}, t_fft),
    ]:
        process = process_of("shapes", data, BasisSpec(name, **opts), "white", device=device)

        def run(process=process):
            z, _ = process.add_noise(process.encode(data), 0.5, generator=gen)
            return process.decode(z)

        t = median_time(run, device=device)
        label = name + ("/" + opts["wavelet"] if "wavelet" in opts else "")
        print(
            f"{label:12s} {t * 1e3:7.2f} ms  = {t / ref:5.2f}x reference  "
            f"{verdict(t / ref <= 3)}   (without the noise: {(t - t_rng) / ref:4.2f}x)"
        )


def bench_empirical(device):
    print("\n== EmpiricalDenoiser call, N=2000, D=1024, batch 64 (budget >= 50 % of matmul)")
    data = load_dataset("shapes", SIZE)[:2000]
    process = process_of("shapes", data, BasisSpec("dct"), "data", device=device)
    den = EmpiricalDenoiser(process, data.to(device))
    z = torch.randn(64, D, device=device)
    items = den.items
    flops = 2 * (2 * 64 * D * 2000)  # logits and the weighted sum: two (64 x 1024 x 2000)
    t_mm = median_time(lambda: (z @ items.T) @ items, device=device)
    t_den = median_time(lambda: den(z, 0.5), device=device)
    gf_mm, gf_den = flops / t_mm / 1e9, flops / t_den / 1e9
    print(
        f"matmul {gf_mm:.1f} GFLOP/s, denoiser {gf_den:.1f} GFLOP/s = "
        f"{100 * gf_den / gf_mm:.0f} %  {verdict(gf_den >= 0.5 * gf_mm)}"
    )


def bench_sampling(device):
    print("\n== sample 64 images x 100 ancestral steps (budget <= 2 s, median of 5)")
    data = load_dataset("fields", SIZE)
    scale = ScheduleSpec(order="scale", softness=1.0, clip=True, gamma_noise=3.0)
    process = process_of("fields", data, BasisSpec("fourier"), "data", scale, device)
    cov = gaussian_field_covariance(SIZE)
    denoisers = {
        "gaussian": GaussianDenoiser(process, torch.zeros(D), cov),
        "empirical": EmpiricalDenoiser(process, data.to(device)),
    }
    for name, den in denoisers.items():
        gen = torch.Generator(device=device).manual_seed(0)
        t = median_time(
            lambda den=den, gen=gen: sample(process, den, 64, 100, generator=gen),
            repeats=5,
            warmup=1,
            device=device,
        )
        print(f"{name:10s} {t:.2f} s  {verdict(t <= 2)}")
    # the dense (non-diagonal) Gaussian route: a wavelet basis with per-component gammas
    wproc = process_of("fields", data, BasisSpec("wavelet"), "data", scale, device)
    wden = GaussianDenoiser(wproc, torch.zeros(D), cov)
    gen = torch.Generator(device=device).manual_seed(0)
    t = median_time(
        lambda: sample(wproc, wden, 64, 100, generator=gen), repeats=3, warmup=1, device=device
    )
    print(f"{'gaussian (dense, wavelet)':10s} {t:.2f} s  (no budget: one Cholesky per step)")


def peer_setup(device):
    """The peer work's process, exact denoiser and true coefficient variances lambda (D,):
    32x32 Fourier, prior std sqrt(P), P = 1/(|k|^2 + 1), Gaussian data with spectrum P^1.5
    (normalised to pixel std 0.5), soft conditioning by -log P at softness 0.5."""
    basis = make_basis("fourier", (1, SIZE, SIZE))
    k2 = (basis.frequencies().double() ** 2).sum(-1)
    power = 1.0 / (k2 + 1.0)
    prior = make_prior("explicit", basis, std=power.sqrt())
    cov = gaussian_field_covariance(SIZE, exponent=3.0, mass=1.0)
    lam = torch.diagonal(_component_cov(basis, cov))
    v = lam / power
    stats = ComponentStats(torch.zeros(D, dtype=torch.float64), lam, lam, v, v)
    peer = ScheduleSpec(order="custom", softness=0.5, gamma_noise=3.0)
    sched = build_schedule(peer, basis, stats, -power.log())
    process = Process(basis, prior, sched).to(device)
    return process, GaussianDenoiser(process, torch.zeros(D), cov), lam


def peer_work(device, batches=(64, 256), repeats=5):
    """The peer work (peer_setup), 100 Euler-Maruyama steps, timed here and, when JAX is
    installed, in bench/peer_jax.py on the same CPU threads."""
    print("\n== peer work: Fourier 32x32, EM 100 steps, softness 0.5 (goal: <= the JAX code)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if device == "cpu" and torch.get_num_threads() != cores:
        # XLA's CPU pool takes every core this process may use; torch gets the same number
        print(f"torch threads {torch.get_num_threads()} -> {cores}, as XLA's CPU pool")
        torch.set_num_threads(cores)
    process, den, lam = peer_setup(device)
    ours = {}
    for batch in batches:
        gen = torch.Generator(device=device).manual_seed(0)
        t = median_time(
            lambda batch=batch, gen=gen: sample(
                process, den, batch, 100, method="euler_maruyama", generator=gen
            ),
            repeats=repeats,
            warmup=1,
            device=device,
        )
        x = sample(process, den, batch, 100, method="euler_maruyama", generator=gen)
        ratio = float(((process.basis.encode(x.cpu().double()) ** 2).mean(0) / lam).mean())
        ours[batch] = t
        print(
            f"torch batch {batch:4d}: {t * 1e3:8.1f} ms per run, sampled/true variance "
            f"{ratio:.3f} (mean over components; MC error ~{(2 / batch) ** 0.5 / 32:.3f})"
        )
    try:
        import jax  # noqa: F401
    except ImportError:
        print("JAX not installed: pip install -r requirements-bench.txt to get the comparison")
        return
    import peer_jax

    if device != "cpu":
        process, den, lam = peer_setup("cpu")
    peer = peer_jax.PeerJax(process, lam)
    peer_jax.check_against_torch(peer, process, den)  # same basis, denoiser and EM step
    print(
        f"threads: torch {torch.get_num_threads()}, XLA CPU {peer_jax.xla_threads()} "
        f"(jax {peer_jax.jax.__version__}, CPU, float32, steps in one jit)"
    )
    for batch, (t, ratio) in peer_jax.time_peer(peer, batches, repeats).items():
        print(
            f"jax   batch {batch:4d}: {t * 1e3:8.1f} ms per run, sampled/true variance "
            f"{ratio:.3f}; torch/jax time {ours[batch] / t:.2f} "
            f"{verdict(ours[batch] <= t) if device == 'cpu' else '(torch not on the CPU)'}"
        )


def _component_cov(basis, cov):
    from rgdiff_core.denoisers import component_covariance

    return component_covariance(basis, cov)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-work", action="store_true", help="only the peer comparison")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.peer_work:
        peer_work(args.device)
        return
    bench_roundtrip(args.device)
    bench_empirical(args.device)
    bench_sampling(args.device)
    peer_work(args.device)


if __name__ == "__main__":
    main()
