"""Trained-denoiser benchmarks with their budgets (issue: trained denoiser). Prints figures,
not asserts.

    python bench/bench_train.py                 # cuda if available, else cpu
    python bench/bench_train.py --device cpu
    python bench/bench_train.py --device cuda --amp off

1. training steps/s: 32x32 digits, DCT basis, batch 64, default U-Net (UNetConfig()), the full
   step (batch drawing, soft-conditioning state over the softness family, forward, backward,
   AdamW, EMA); median of repeated timed blocks.
2. sampling images/s: 100 ancestral steps at softness 1, batch 256, EMA network in
   inference mode. On CPU this is far too slow to run in full: it runs --cpu-sample-batch images
   for --cpu-sample-steps steps and scales to 100 steps (a step's cost does not depend on t),
   and says so.

Budgets (GPU; CPU figures are informational, the app offers the network on CPU with a warning):
training >= 30 steps/s at batch 64 (20k steps in under 12 minutes alone on one GPU), sampling
>= 200 images/s (a 64-image grid at 100 steps in well under a second).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rgdiff_core.denoisers.models import parameter_count  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402
from rgdiff_core.training import TrainConfig, Trainer, hardware_description  # noqa: E402

BUDGET_TRAIN_STEPS_PER_S = 30.0  # GPU, batch 64, 32x32, default model
BUDGET_SAMPLE_IMAGES_PER_S = 200.0  # GPU, 100 ancestral steps, batch 256


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(trainer: Trainer, blocks: int, per_block: int) -> float:
    dev = trainer.device
    for _ in range(3):  # warm-up: allocator, cuDNN autotuning
        trainer.train_step()
    _sync(dev)
    rates = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            trainer.train_step()
        _sync(dev)
        rates.append(per_block / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_sampling(trainer: Trainer, n: int, steps: int, repeats: int) -> float:
    den, process, dev = trainer.ema_denoiser.eval(), trainer.process, trainer.device
    gen = torch.Generator(device=dev).manual_seed(0)
    sample(process, den, n, 2, generator=gen)  # warm-up
    _sync(dev)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample(process, den, n, steps, method="ancestral", generator=gen)
        _sync(dev)
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def verdict(ok: bool, device) -> str:
    if device.type != "cuda":
        return "(CPU: no budget)"
    return "ok" if ok else "OVER BUDGET"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--amp", default="auto", help="training autocast: auto | bf16 | fp16 | off")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sample-batch", type=int, default=256)
    p.add_argument("--cpu-sample-batch", type=int, default=16)
    p.add_argument("--cpu-sample-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    config = TrainConfig(
        dataset="digits", size=32, basis="dct", batch=args.batch, amp=args.amp, device=args.device
    )
    trainer = Trainer(config)
    dev = trainer.device
    cuda = dev.type == "cuda"
    print(
        f"device {hardware_description(dev)}, threads {torch.get_num_threads()}, "
        f"model {parameter_count(trainer.model) / 1e6:.2f} M parameters, "
        f"amp {trainer.amp_dtype}"
    )

    print(
        f"\n== training steps/s, 32x32, batch {args.batch} (budget >= "
        f"{BUDGET_TRAIN_STEPS_PER_S:g} on GPU)"
    )
    rate = bench_training(trainer, blocks=5 if cuda else 3, per_block=50 if cuda else 3)
    print(
        f"{rate:8.2f} steps/s = {rate * args.batch:8.0f} images/s  "
        f"{verdict(rate >= BUDGET_TRAIN_STEPS_PER_S, dev)}"
    )

    steps = 100
    if cuda:
        n, run_steps = args.sample_batch, steps
        print(
            f"\n== sampling images/s, {steps} ancestral steps, batch {n} (budget >= "
            f"{BUDGET_SAMPLE_IMAGES_PER_S:g} on GPU)"
        )
    else:
        n, run_steps = args.cpu_sample_batch, args.cpu_sample_steps
        print(
            f"\n== sampling images/s, {steps} ancestral steps: on CPU batch {args.sample_batch}"
            f" x {steps} steps is too slow, so batch {n} x {run_steps} steps, scaled to "
            f"{steps} steps"
        )
    images_per_s = bench_sampling(trainer, n, run_steps, repeats=3) * run_steps / steps
    print(
        f"{images_per_s:8.2f} images/s ({n / images_per_s:.1f} s per batch of {n} at "
        f"{steps} steps)  {verdict(images_per_s >= BUDGET_SAMPLE_IMAGES_PER_S, dev)}"
    )


if __name__ == "__main__":
    main()
