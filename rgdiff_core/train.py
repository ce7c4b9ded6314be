"""Command line: train a network denoiser over the softness family, resume, export.

    python -m rgdiff_core.train --dataset shapes --basis wavelet --wavelet haar --order scale \\
        --size 32 --steps 20000 --out runs/shapes_haar [--batch 64] [--lr 3e-4] [--channels 32] \\
        [--export assets/models/shapes_haar.pt]

Runs unchanged under `torchrun --nproc_per_node=N -m rgdiff_core.train ...` (DDP; --batch is per
process). Rerunning with the same --out resumes from its checkpoint (--no-resume starts over).
--export writes the final EMA model plus NAME.json and NAME_loss.csv next to it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

__all__ = ["main", "parse_args", "config_from_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from .training import AMP_MODES, TrainConfig
    from .training.config import LOSS_WEIGHTS, LR_SCHEDULES

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m rgdiff_core.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("data, basis, prior, schedule family")
    g.add_argument("--dataset", default=d.dataset, help="digits | patches | fields | shapes")
    g.add_argument("--size", type=int, default=d.size, help="image side (8, 16, 32, 64)")
    g.add_argument("--basis", default=d.basis, help="pixel | pca | fourier | dct | wavelet")
    g.add_argument("--wavelet", default=None, help="wavelet family for --basis wavelet (haar)")
    g.add_argument("--levels", type=int, default=None, help="wavelet levels (default: all)")
    g.add_argument("--pca-floor", type=float, default=None, help="PCA eigenvalue floor")
    g.add_argument("--prior", default=d.prior, help="white | data | power_law")
    g.add_argument(
        "--order", default=d.order, help="variance | scale | row | column | raster | scale_column"
    )
    g.add_argument("--gamma-denoise", type=float, default=d.gamma_denoise)
    g.add_argument(
        "--gamma-noise",
        type=lambda x: None if x == "auto" else float(x),
        default=d.gamma_noise,
        help="noised-end target, or 'auto': the smallest with prior term <= 0.05 nat at s = inf",
    )
    g.add_argument("--no-clip", action="store_true", help="do not clip gamma to its window")
    g.add_argument("--softness-min", type=float, default=d.softness_min)
    g.add_argument("--softness-max", type=float, default=d.softness_max)
    g.add_argument("--p-one", type=float, default=d.p_softness_one, help="mass at softness 1")
    g.add_argument("--p-inf", type=float, default=d.p_softness_inf, help="mass at softness inf")
    g = p.add_argument_group("model")
    m = d.model
    g.add_argument(
        "--gaussian-rank",
        type=int,
        default=d.gaussian_rank,
        help="0: plain network; r >= 1: exact Gaussian (top r eigenpairs + diagonal) + residual",
    )
    g.add_argument("--channels", type=int, default=m.channels, help="width of the first level")
    g.add_argument(
        "--channel-mult",
        default=",".join(map(str, m.channel_mult)),
        help="comma-separated width multipliers, one per resolution",
    )
    g.add_argument("--num-res-blocks", type=int, default=m.num_res_blocks)
    g.add_argument("--no-attention", action="store_true")
    g.add_argument("--dropout", type=float, default=m.dropout)
    g.add_argument("--cond-dim", type=int, default=m.cond_dim)
    g = p.add_argument_group("optimisation")
    for name in ("batch", "steps", "warmup", "log_every", "ckpt_every", "seed"):
        g.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "weight_decay", "ema_decay", "grad_clip"):
        g.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    g.add_argument("--loss-weight", default=d.loss_weight, choices=LOSS_WEIGHTS)
    g.add_argument("--lr-schedule", default=d.lr_schedule, choices=LR_SCHEDULES)
    g.add_argument(
        "--p-known", type=float, default=d.p_known, help="share of examples with a known mask"
    )
    g.add_argument("--amp", default=d.amp, choices=AMP_MODES)
    g.add_argument("--device", default=d.device, help="auto | cpu | cuda | cuda:N")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, help="run folder (checkpoint.pt; resumed if present)")
    g.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --out")
    g.add_argument(
        "--init-from",
        default=None,
        help="start a new run from this checkpoint's weights (fine-tuning, e.g. "
        "for other gamma targets); same dataset, size, basis, prior and network",
    )
    g.add_argument("--export", default=None, help="write the final model to this .pt path")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace):
    from .denoisers.models import UNetConfig
    from .training import TrainConfig

    options = {}
    if args.wavelet is not None:
        options["wavelet"] = args.wavelet
    if args.levels is not None:
        options["levels"] = args.levels
    if args.pca_floor is not None:
        options["floor"] = args.pca_floor
    model = UNetConfig(
        channels=args.channels,
        channel_mult=tuple(int(x) for x in args.channel_mult.split(",")),
        num_res_blocks=args.num_res_blocks,
        attention=not args.no_attention,
        dropout=args.dropout,
        cond_dim=args.cond_dim,
    )
    return TrainConfig(
        dataset=args.dataset,
        size=args.size,
        basis=args.basis,
        basis_options=options,
        prior=args.prior,
        order=args.order,
        gamma_denoise=args.gamma_denoise,
        gamma_noise=args.gamma_noise,
        clip=not args.no_clip,
        softness_min=args.softness_min,
        softness_max=args.softness_max,
        p_softness_one=args.p_one,
        p_softness_inf=args.p_inf,
        gaussian_rank=args.gaussian_rank,
        loss_weight=args.loss_weight,
        p_known=args.p_known,
        lr_schedule=args.lr_schedule,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        ema_decay=args.ema_decay,
        grad_clip=args.grad_clip,
        steps=args.steps,
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        seed=args.seed,
        model=model,
        amp=args.amp,
        device=args.device,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    import torch

    from .training import TrainingDiverged, export_checkpoint, train

    command = shlex.join(["python", "-m", "rgdiff_core.train", *argv])
    if os.environ.get("WORLD_SIZE", "1") != "1":
        command = (
            f"torchrun --nproc_per_node={os.environ['WORLD_SIZE']} -m "
            f"rgdiff_core.train {shlex.join(argv)}"
        )
    try:
        config = config_from_args(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest convs
    try:
        result = train(
            config,
            args.out,
            resume=not args.no_resume,
            command=command,
            progress=lambda line: print(line, flush=True),
            init_from=args.init_from,
        )
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:  # e.g. --init-from a model of another process
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.export and result.checkpoint is not None:
        meta = export_checkpoint(result.checkpoint, args.export, command=command)
        print(
            f"exported {args.export} ({meta['file_mb']} MB, {meta['weights_dtype']}, "
            f"final loss {meta['final_loss']:.4f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
