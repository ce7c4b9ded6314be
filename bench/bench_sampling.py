"""Sampling page benchmarks with their budgets (issue: Sampling page). Prints figures, not asserts.

    python bench/bench_sampling.py               # CPU budgets (and CUDA figures when present)
    python bench/bench_sampling.py --device cuda

Budgets:
- 32x32 digits, 16 samples x 200 ancestral steps, exact empirical denoiser: <= 2 s on the CPU,
  both the bare sampler and the page's run (recorded trajectory + live preview callback).
- live preview: the page's LiveProgress updates at least every 0.25 s while sampling (the
  largest gap between updates, rendering the preview image and its PNG included).
- CUDA (when available): images/s for the same run and for 256 samples.

The process is the page's default: Haar wavelets, white prior, soft-conditioning schedule in
variance order at softness 1. Timings are medians over repeats.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
logging.getLogger("streamlit").setLevel(logging.ERROR)

from _timing import median_time, verdict  # noqa: E402

from rgdiff_core import experiments as ex  # noqa: E402
from rgdiff_core import viz  # noqa: E402
from rgdiff_core.data import load_dataset  # noqa: E402
from rgdiff_core.denoisers import EmpiricalDenoiser  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402
from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, build_process  # noqa: E402

SIZE, N, STEPS = 32, 16, 200
BUDGET_S, PREVIEW_BUDGET_S = 2.0, 0.25


def build(device: str):
    data = load_dataset("digits", SIZE)
    spec = ProcessSpec(DataSpec("digits", SIZE), BasisSpec("wavelet"), PriorSpec("white"))
    process = build_process(spec, data, device=device)
    return process, EmpiricalDenoiser(process, data.to(device))


def page_run(process, den, n: int, device: str):
    """The Sampling page's run: recorded trajectory and the live preview callback, with the
    preview rendered and PNG-encoded as st.image would; returns (run, update times)."""
    from ui.runs import RECORD, LiveProgress

    stamps = []
    live = LiveProgress(
        process,
        STEPS,
        device,
        bar=lambda f, text: stamps.append(time.perf_counter()),
        image=lambda a: viz.encode_png(a),
    )
    rec = ex.Recorder(process, n, STEPS, RECORD, on_step=live)
    start = time.perf_counter()
    run = ex.run_sampling(process, den, n, STEPS, "ancestral", seed=0, recorder=rec)
    return run, [start, *stamps]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available")
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU"
    print(f"device {dev} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    process, den = build(dev)

    print(
        f"\n== {N} samples x {STEPS} ancestral steps, 32x32 digits, exact empirical "
        f"(N = {den.items.shape[0]})" + (f"  (budget <= {BUDGET_S:g} s)" if dev == "cpu" else "")
    )
    bare = median_time(
        lambda: sample(process, den, N, STEPS, generator=torch.Generator(dev).manual_seed(0)),
        args.repeats,
        dev,
    )
    page = median_time(lambda: page_run(process, den, N, dev), args.repeats, dev)
    for label, t in (("bare sampler", bare), ("page run (trajectory + preview)", page)):
        extra = f"  {verdict(t <= BUDGET_S)}" if dev == "cpu" else ""
        print(f"{label:32s} {t:6.3f} s  {N / t:8.1f} images/s{extra}")

    print(f"\n== live preview period while sampling (budget <= {PREVIEW_BUDGET_S} s)")
    gaps = []
    for _ in range(3):
        _, stamps = page_run(process, den, N, dev)
        gaps += [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    print(
        f"{len(gaps)} updates, median gap {statistics.median(gaps):.3f} s, largest "
        f"{max(gaps):.3f} s  {verdict(max(gaps) <= PREVIEW_BUDGET_S)}"
    )

    if dev == "cuda":
        print("\n== CUDA throughput, 200 ancestral steps")
        for n in (N, 256):
            t = median_time(
                lambda n=n: sample(
                    process, den, n, STEPS, generator=torch.Generator(dev).manual_seed(0)
                ),
                args.repeats,
                dev,
            )
            tp = median_time(lambda n=n: page_run(process, den, n, dev), args.repeats, dev)
            print(
                f"{n:4d} samples: bare {n / t:8.1f} images/s ({t:.3f} s), page run "
                f"{n / tp:8.1f} images/s ({tp:.3f} s)"
            )


if __name__ == "__main__":
    main()
