"""Likelihood bench: negative ELBO in bits/dim (rgdiff_core.likelihood, docs/maths.md §2c).

Table 1, the check: Gaussian fields (the "fields" dataset, test split) with the exact Gaussian
denoiser, every basis, softness in {inf, 1, 0.1} with the clip, γ̃_n auto: the ELBO against the
exact NLL under N(0, C) (Cholesky) and against the bound's own expected gap, computed in closed
form: the decoder's 1/2 log det(I + Sigma^-1 diag e^gamma(0)) plus the prior term's
L_T - 1/2 log det(I + Sigma diag e^-gamma(1)) (Sigma the whitened covariance).

Table 2, held-out bits/dim: for every checkpoint in assets/models (its dataset and size, its
trained targets γ̃_d, γ̃_n and clip: load_model's defaults) and softness in {inf, 3, 1, 0.3, 0.1}:
    gaussian   exact denoiser of a Gaussian fitted to the training split (registry gaussian_fit)
    empirical  exact denoiser of the training split (memorises: it cannot generalise)
    network    the trained network
on the same n test images (a fixed random subset) and the same seed. Bits/dim are of the
continuous density of x on [-1, 1]; the shipped data are not 8-bit (digits have 17 levels and
every set is resized), so no dequantised 8-bit figure is given. stderr is the Monte-Carlo error
for these images; "±data" adds the spread over images (the error of the population's value).

    python bench/bench_likelihood.py                     # n = 24, n_t = 16: ~8 min, one thread
    python bench/bench_likelihood.py --n 64 --n-t 32 --out bench/results/likelihood_n64.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rgdiff_core.bases import BASES  # noqa: E402
from rgdiff_core.data import gaussian_field_covariance, load_dataset  # noqa: E402
from rgdiff_core.denoisers import (  # noqa: E402
    GaussianDenoiser,
    component_covariance,
    load_checkpoint,
    load_model,
)
from rgdiff_core.denoisers.registry import DenoiserSpec, build_denoiser  # noqa: E402
from rgdiff_core.likelihood import elbo  # noqa: E402
from rgdiff_core.specs import (  # noqa: E402
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)

SOFTNESS = (math.inf, 3.0, 1.0, 0.3, 0.1)
NOTES = [
    "Notes. Bits/dim bound -log2 p(x) / D of the continuous density of x on [-1, 1] (lower is "
    "better); the shipped data are not 8-bit, so no dequantised figure is given. stderr: "
    "Monte-Carlo error for these images (conservative); ±data: also over images. L_T: the "
    "prior term in nats per image, part of the bound. Every checkpoint is evaluated at its "
    "trained targets (load_model's defaults): γ̃_d = -7 and the clip on, γ̃_n = 3 (digits_dct, "
    "digits_pixel_column, shapes_haar) or 10 (digits_dct_gn10); the same test images (a fixed "
    "random subset) and seed serve every row of a checkpoint.",
]
FIELD_SOFTNESS = (math.inf, 1.0, 0.1)
FIELD_SIZE = 16


def fmt_s(s: float) -> str:
    return "∞" if math.isinf(s) else f"{s:g}"


def subset(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of n items (all when n >= len)."""
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx.sort().values]


def exact_nll_bpd(x: torch.Tensor, cov: torch.Tensor) -> float:
    """-log N(x; 0, C) per dimension in bits, averaged over x."""
    d = cov.shape[0]
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol, x.double().flatten(1).T, upper=False)
    nll = 0.5 * (white**2).sum(0) + chol.diagonal().log().sum() + 0.5 * d * math.log(2 * math.pi)
    return float(nll.mean()) / (d * math.log(2))


def expected_gap_bpd(process, cov: torch.Tensor) -> float:
    """E[-ELBO] - E[NLL] for zero-mean Gaussian data and the exact denoiser, bits/dim (module
    docstring); the prior's mean offset enters through E[u^2] in L_T."""
    d = process.dim
    s, m = process.prior.std.double().cpu(), process.prior.mean.double().cpu()
    sigma = component_covariance(process.basis, cov) / s[:, None] / s[None, :]
    like = torch.zeros(1, dtype=torch.float64)
    g0 = process.noise_state(0.0, like=like).gamma.expand(d)
    g1 = process.noise_state(1.0, like=like).gamma.expand(d)
    eye = torch.eye(d, dtype=torch.float64)
    decoder = 0.5 * (torch.logdet(sigma + torch.diag(g0.exp())) - torch.logdet(sigma))
    u_sq = sigma.diagonal() + (m / s) ** 2
    l_t = (
        0.5
        * (
            torch.sigmoid(-g1) * u_sq - torch.sigmoid(-g1) - torch.nn.functional.logsigmoid(g1)
        ).sum()
    )
    # the mean offset mu = -m/s is NLL-neutral but L_T counts it: E[u^2] = Sigma_ii + mu^2
    mutual = 0.5 * torch.logdet(eye + sigma * torch.exp(-g1)[None, :])
    return float(decoder + l_t - mutual) / (d * math.log(2))


def field_table(n: int, n_t: int, seed: int) -> list[str]:
    train = load_dataset("fields", FIELD_SIZE)
    x = subset(load_dataset("fields", FIELD_SIZE, "test"), n, seed)
    cov = gaussian_field_covariance(FIELD_SIZE)
    nll = exact_nll_bpd(x, cov)
    lines = [
        f"## Gaussian fields {FIELD_SIZE}x{FIELD_SIZE}: ELBO vs exact NLL ({x.shape[0]} test "
        f"images, n_t = {n_t}, exact denoiser, data prior, variance order, clip, γ̃_n auto)",
        "",
        f"Exact NLL of these images: {nll:.4f} bits/dim.",
        "",
        "| basis | s | γ̃_n | ELBO bits/dim | stderr | ELBO − NLL | expected gap | "
        "(ELBO − NLL − gap) / stderr | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for basis in BASES:
        for s in FIELD_SOFTNESS:
            spec = ProcessSpec(
                DataSpec("fields", FIELD_SIZE),
                BasisSpec(basis),
                PriorSpec("data"),
                ScheduleSpec(softness=s, clip=True),
            )
            process = build_process(spec, train)
            den = GaussianDenoiser(process, torch.zeros(process.dim), cov)
            start = time.perf_counter()
            result = elbo(process, den, x, n_t=n_t, generator=torch.Generator().manual_seed(seed))
            took = time.perf_counter() - start
            gap, expected = result.bpd - nll, expected_gap_bpd(process, cov)
            z = (gap - expected) / result.stderr
            line = (
                f"| {basis} | {fmt_s(s)} | {process.schedule.gamma_noise:.2f} | {result.bpd:.4f} | "
                f"{result.stderr:.4f} | {gap:+.4f} | {expected:+.4f} | {z:+.2f} | {took:.1f} s |"
            )
            print(line, flush=True)
            lines.append(line)
    return lines


def model_table(n: int, n_t: int, seed: int, device: str) -> list[str]:
    lines = [
        f"## Held-out bits/dim ({n} test images per checkpoint, n_t = {n_t}; "
        "the checkpoint's trained γ̃ targets and clip)",
        "",
        "| checkpoint | data | γ̃_n | s | denoiser | bits/dim | stderr | ±data | L_T (nat) | time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / "assets" / "models").glob("*.pt")):
        ckpt = load_checkpoint(path, map_location="cpu")
        name, size = ckpt["dataset"], int(ckpt["size"])
        train = load_dataset(name, size)
        x = subset(load_dataset(name, size, "test"), n, seed)
        gaussian = None
        for s in SOFTNESS:
            process, net = load_model(path, softness=s, device=device)
            if gaussian is None:
                # the fitted Gaussian depends on the basis and prior only (every softness shares
                # them), and it is handed the noise state, so one fit serves every row
                gaussian = build_denoiser(DenoiserSpec("gaussian_fit"), process, train)
            empirical = build_denoiser(DenoiserSpec("empirical"), process, train)
            for kind, den in (("gaussian", gaussian), ("empirical", empirical), ("network", net)):
                start = time.perf_counter()
                result = elbo(
                    process, den, x, n_t=n_t, generator=torch.Generator().manual_seed(seed)
                )
                took = time.perf_counter() - start
                line = (
                    f"| {path.stem} | {name} {size}² | {ckpt['gamma_noise']:g} | {fmt_s(s)} | "
                    f"{kind} | {result.bpd:.3f} | {result.stderr:.3f} | "
                    f"{result.stderr_data:.3f} | {result.prior:.3g} | {took:.1f} s |"
                )
                print(line, flush=True)
                lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=24, help="test images per table row")
    parser.add_argument("--n-t", type=int, default=16, help="strata in t per image")
    parser.add_argument("--field-n", type=int, default=64, help="field images (table 1)")
    parser.add_argument("--field-n-t", type=int, default=32, help="strata in t (table 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    # one thread: OpenMP threads spin badly when another process shares the two cores
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "likelihood.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    head = [
        "# Likelihood (negative ELBO, bits/dim): bench/bench_likelihood.py",
        "",
        f"`{' '.join(sys.argv)}` · torch {torch.__version__} · {args.device} · "
        f"{args.threads} threads",
        "",
    ]
    lines = head + field_table(args.field_n, args.field_n_t, args.seed) + [""]
    lines += model_table(args.n, args.n_t, args.seed, args.device)
    lines += [""] + NOTES + ["", f"Total {time.perf_counter() - start:.0f} s."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
