"""Timing helpers shared by the bench scripts: medians of synchronised wall times, verdicts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_time(
    fn: Callable[[], object], repeats: int = 7, device: str = "cpu", warmup: int = 2
) -> float:
    """Median wall time of fn() in seconds over `repeats` calls after `warmup` calls; on CUDA
    the device is synchronised around each call, so queued kernels are counted."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER BUDGET"
