"""Sampling speed of the shipped networks and of the exact denoisers, against budgets.

CPU (torch threads = --threads, default 2): for every checkpoint in assets/models, 16 samples
at softness 1 with the app's default sampler (dpm2m) at the accuracy advisor's step count
(2 % total variance with the data's diagonal Gaussian); budget 5 s each. Then the two exact
denoisers at equal size (glyphs and digits 32 x 32, 16 samples, 100 dpm2m steps, data prior,
Haar / scale at s = 1): the fitted Gaussian must be at least as fast as the empirical one of
the app's training set.

CUDA (only when a GPU is present): images/s of every network at batch 256 and 1024 with 100
steps, with the settings the app samples with (`fast_inference`, applied by load_model: bf16
autocast for the U-Net and channels_last weights) and inference mode, against the goal of
3000 images/s at 100 steps on an H200. Without a GPU the section says so.

    python bench/bench_network.py [--threads 2] [--repeats 3] [--only all|cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._timing import median_time, verdict  # noqa: E402
from rgdiff_core.accuracy import diagonal_gaussian, steps_for_accuracy  # noqa: E402
from rgdiff_core.data import load_dataset  # noqa: E402
from rgdiff_core.denoisers import load_checkpoint, load_model  # noqa: E402
from rgdiff_core.denoisers.registry import DenoiserSpec, build_denoiser  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402
from rgdiff_core.specs import (  # noqa: E402
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)

CPU_BUDGET_S = 5.0
GPU_GOAL = 3000.0  # images/s at 100 steps on an H200
METHOD = "dpm2m"


def advised(process, train) -> int:
    return steps_for_accuracy(process, diagonal_gaussian(process, train), method=METHOD, tol=0.02)


def cpu_networks(repeats: int) -> list[str]:
    lines = [
        "| checkpoint | steps (advisor) | 16 samples | budget | verdict |",
        "|---|---|---|---|---|",
    ]
    for path in sorted((ROOT / "assets" / "models").glob("*.pt")):
        ckpt = load_checkpoint(path, map_location="cpu")
        train = load_dataset(ckpt["dataset"], ckpt["size"], "train")
        process, den = load_model(path, softness=1.0)
        steps = advised(process, train)

        def run(p=process, d=den, k=steps):
            with torch.inference_mode():
                sample(p, d, 16, k, METHOD, generator=torch.Generator().manual_seed(0))

        sec = median_time(run, repeats=repeats, warmup=1)
        lines.append(
            f"| {path.stem} | {steps} | {sec:.2f} s | {CPU_BUDGET_S:g} s | "
            f"{verdict(sec <= CPU_BUDGET_S)} |"
        )
        print(lines[-1], flush=True)
    return lines


def exact_pair(repeats: int) -> list[str]:
    lines = [
        "| data (train items) | Gaussian, 16 x 100 steps | empirical, 16 x 100 steps | "
        "Gaussian / empirical | verdict (<= 1) |",
        "|---|---|---|---|---|",
    ]
    for name in ("digits", "glyphs"):
        spec = ProcessSpec(
            DataSpec(name, 32),
            BasisSpec("wavelet", wavelet="haar"),
            PriorSpec("data"),
            ScheduleSpec(family="soft", order="scale", softness=1.0, clip=True),
        )
        train = load_dataset(name, 32, "train")
        process = build_process(spec, train)
        times = {}
        for kind in ("gaussian_fit", "empirical"):
            den = build_denoiser(DenoiserSpec(kind), process, train)

            def run(d=den, p=process):
                with torch.inference_mode():
                    sample(p, d, 16, 100, METHOD, generator=torch.Generator().manual_seed(0))

            times[kind] = median_time(run, repeats=repeats, warmup=1)
        ratio = times["gaussian_fit"] / times["empirical"]
        lines.append(
            f"| {name} ({len(train)}) | {times['gaussian_fit']:.2f} s | {times['empirical']:.2f} s "
            f"| {ratio:.2f} | {verdict(ratio <= 1.0)} |"
        )
        print(lines[-1], flush=True)
    return lines


def gpu_networks() -> list[str]:
    if not torch.cuda.is_available():
        return ["No CUDA device on this machine: the GPU figures were not measured."]
    lines = ["| checkpoint | batch | images/s at 100 steps | goal |", "|---|---|---|---|"]
    for path in sorted((ROOT / "assets" / "models").glob("*.pt")):
        process, den = load_model(path, softness=1.0, device="cuda")
        for batch in (256, 1024):

            def run(b=batch, p=process, d=den):
                with torch.inference_mode():  # load_model set bf16 + channels_last
                    sample(p, d, b, 100, METHOD, generator=torch.Generator("cuda").manual_seed(0))

            sec = median_time(run, repeats=3, device="cuda", warmup=1)
            lines.append(f"| {path.stem} | {batch} | {batch / sec:.0f} | {GPU_GOAL:g} |")
            print(lines[-1], flush=True)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the tables here (markdown)")
    parser.add_argument(
        "--only", choices=("all", "cpu", "cuda"), default="all", help="which sections to run"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    head = f"torch {torch.__version__}, {args.threads} CPU threads, median of {args.repeats}"
    print(head)
    parts = []
    if args.only in ("all", "cpu"):
        parts += [
            "## CPU: 16 samples per shipped network (softness 1, dpm2m at the advisor's steps)\n",
            *cpu_networks(args.repeats),
            "\n## CPU: exact Gaussian against exact empirical at equal size\n",
            *exact_pair(args.repeats),
        ]
    if args.only in ("all", "cuda"):
        parts += ["\n## CUDA\n", *gpu_networks()]
    took = time.perf_counter() - start
    text = f"# Sampling speed (bench/bench_network.py)\n\n{head}; {took:.0f} s.\n\n"
    text += "\n".join(parts) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
