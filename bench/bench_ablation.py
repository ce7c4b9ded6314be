"""Ablation of the training recipe of the shipped models (glyphs, 16 x 16, Haar / scale order).

Each variant trains the same small U-Net (channels 32, one ResBlock per level) for --steps
steps at batch 64 from seed 0, on one thread, and is scored on the same held-out data:
    plain       plain network, uniform v-loss, constant learning rate (the earlier recipe)
    residual    + starts from the exact Gaussian (top 32 eigenpairs + diagonal, gamma image)
    elbo        + ELBO-weighted loss (frozen components weigh 0)
    cosine      + cosine learning-rate decay                         (= the shipped recipe)
    no_masks    the shipped recipe without random known masks (p_known 0 instead of 0.25)
Scores: held-out bits/dim (ELBO, n_bpd images, 16 strata) at s = 1; FD in the glyph
classifier's features (n samples, dpm2m at the advisor's steps) at s = 1 and s = 0.1 against
the training split, with held-out data's FD as the floor; and super-resolution from the coarse
4 x 4 level: the x0-MSE on the unknown components at t = 0.5, s = 1 (whitened units).

Runs resume from runs/ablation/VARIANT; results go to bench/results/ablation.md.

    python bench/bench_ablation.py [--steps 600] [--n 300]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rgdiff_core import conditioning as cond  # noqa: E402
from rgdiff_core.accuracy import diagonal_gaussian, steps_for_accuracy  # noqa: E402
from rgdiff_core.data import load_dataset  # noqa: E402
from rgdiff_core.denoisers import load_model  # noqa: E402
from rgdiff_core.denoisers.models import UNetConfig  # noqa: E402
from rgdiff_core.likelihood import elbo  # noqa: E402
from rgdiff_core.metrics import sample_quality  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402
from rgdiff_core.training import TrainConfig, train  # noqa: E402

SHIPPED = TrainConfig(
    dataset="glyphs",
    size=16,
    basis="wavelet",
    basis_options={"wavelet": "haar"},
    order="scale",
    gamma_noise=None,
    gaussian_rank=32,
    loss_weight="elbo",
    p_known=0.25,
    lr=5e-4,
    lr_schedule="cosine",
    warmup=100,
    ema_decay=0.998,
    batch=64,
    log_every=100,
    ckpt_every=200,
    device="cpu",
    model=UNetConfig(channels=32, channel_mult=(1, 2, 2), num_res_blocks=1),
)
VARIANTS = {
    "plain": dict(gaussian_rank=0, loss_weight="v", lr_schedule="constant", p_known=0.25),
    "residual": dict(loss_weight="v", lr_schedule="constant"),
    "elbo": dict(lr_schedule="constant"),
    "cosine": {},
    "no_masks": dict(p_known=0.0),
}


def score(path: Path, train_x, test_x, n: int, n_bpd: int) -> dict:
    out = {}
    for s in (1.0, 0.1):
        process, den = load_model(path, softness=s)
        gauss = diagonal_gaussian(process, train_x)
        steps = steps_for_accuracy(process, gauss, method="dpm2m", tol=0.02)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            x = sample(process, den, n, steps, "dpm2m", generator=gen).clamp(-1, 1)
        q = sample_quality(x, train_x, test_x[n_bpd:], n=n)
        out[s] = {"fd": q["fd"], "fd_se": q["fd_se"], "fd_held_out": q["fd_held_out"]}
        out[s].update(precision=q["precision"], recall=q["recall"], steps=steps)
    process, den = load_model(path, softness=1.0)
    e = elbo(process, den, test_x[:n_bpd], n_t=16, generator=torch.Generator().manual_seed(1))
    out["bpd"], out["bpd_se"] = e.bpd, e.stderr
    # super-resolution from 4 x 4: x0 error on the unknown components at t = 0.5
    src = test_x[:200]
    mask = cond.wavelet_condition(process, src[:1], 4)[0]
    with torch.no_grad():
        u = process.encode(src)
        gen = torch.Generator().manual_seed(2)
        state = process.noise_state(0.5, like=u)
        g = state.gamma.expand_as(u).masked_fill(mask, -math.inf)
        alpha, sigma = torch.sigmoid(-g).sqrt(), torch.sigmoid(g).sqrt()
        z = torch.where(mask, u, alpha * u + sigma * torch.randn(u.shape, generator=gen))
        st = type(state)(g, torch.zeros_like(g))
        x0 = den(z, torch.full((len(u),), 0.5), state=st)
    out["superres_mse"] = float((x0 - u)[:, ~mask].square().mean())
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n", type=int, default=300, help="samples per FD")
    parser.add_argument("--n-bpd", type=int, default=200)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--runs", default=str(ROOT / "runs" / "ablation"), help="run folders")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_x = load_dataset("glyphs", 16, "train")
    test_x = load_dataset("glyphs", 16, "test")
    rows = {}
    for name in args.variants:
        cfg = replace(SHIPPED, steps=args.steps, **VARIANTS[name])
        out = Path(args.runs) / name
        start = time.perf_counter()
        result = train(cfg, out, progress=None)
        tail = result.loss_history[-100:]
        rows[name] = score(out / "checkpoint.pt", train_x, test_x, args.n, args.n_bpd)
        rows[name]["train_s"] = result.time_s
        rows[name]["final_loss"] = sum(tail) / len(tail)
        print(name, rows[name], f"({time.perf_counter() - start:.0f} s)", flush=True)
    lines = [
        f"# Training-recipe ablation (bench/bench_ablation.py)\n\nglyphs 16x16, Haar / scale, "
        f"{args.steps} steps at batch 64, one thread, torch {torch.__version__}; FD of "
        f"{args.n} dpm2m samples at the advisor's steps against the training split (held-out "
        "data's FD at the same n in brackets); bits/dim of "
        f"{args.n_bpd} held-out images at s = 1; super-resolution x0-MSE on the unknown "
        "components from the 4x4 level at t = 0.5 (whitened units). Lower is better "
        "everywhere except precision / recall.\n",
        "| variant | FD s=1 | FD s=0.1 | P / R s=1 | bits/dim | super-res MSE | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        a, b = r[1.0], r[0.1]
        lines.append(
            f"| {name} | {a['fd']:.1f} ± {a['fd_se']:.1f} ({a['fd_held_out']:.1f}) | "
            f"{b['fd']:.1f} ± {b['fd_se']:.1f} | {a['precision']:.2f} / {a['recall']:.2f} | "
            f"{r['bpd']:.3f} ± {r['bpd_se']:.3f} | {r['superres_mse']:.4f} | "
            f"{r['train_s']:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if set(args.variants) == set(VARIANTS):
        (ROOT / "bench" / "results" / "ablation.md").write_text(text)


if __name__ == "__main__":
    main()
