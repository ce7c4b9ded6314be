"""The ends of the process (docs/maths.md §2b): the prior term L_T before and after the upper
clip's redesign and γ̃_n auto, and L_T of every app default and preset on every dataset.
Prints figures and their bound (L_T <= 0.1 nat); writes bench/results/terminal.md.

    python bench/bench_terminal.py

1. digits 32x32, DCT, variance order, clip, s = 1 (the issue's rows): L_T with the old upper
   clip (gamma_noise + log v for every component, before commit e6b1dd7, recomputed here from
   the schedule: at t = 1 every clipped component sat at its upper clip), with the new clip,
   and with γ̃_n auto.
2. Every default and preset of the app (ui.state), on every dataset at 32x32: L_T on the whole
   training split, with the γ̃_n that auto chooses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rgdiff_core import DATASETS, load_dataset  # noqa: E402
from rgdiff_core.specs import (  # noqa: E402
    BasisSpec,
    DataSpec,
    PriorSpec,
    ProcessSpec,
    ScheduleSpec,
    build_process,
)
from rgdiff_core.terminal import (  # noqa: E402
    L_T_TARGET,
    prior_term,
    prior_term_from_moments,
    whitened_second_moments,
)

OUT = ROOT / "bench" / "results" / "terminal.md"


def issue_rows(lines: list[str]) -> None:
    x = load_dataset("digits", 32)
    lines += [
        "## 1. digits 32x32, DCT, variance order, clip, s = 1 (nats per image)",
        "",
        "| prior | γ̃_n | L_T, old clip | L_T, new clip | γ̃_n auto | L_T at auto |",
        "|---|---|---|---|---|---|",
    ]
    for prior, gn in (("white", 3.0), ("data", 3.0), ("data", 10.0)):
        sched = ScheduleSpec(order="variance", softness=1.0, clip=True, gamma_noise=gn)
        spec = ProcessSpec(DataSpec("digits", 32), BasisSpec("dct"), PriorSpec(prior), sched)
        process = build_process(spec, x)
        u_sq = whitened_second_moments(process, x)
        old = process.schedule.gamma_noise + process.schedule.log_v  # the old upper clip
        lt_old = prior_term_from_moments(old, u_sq)
        lt_new = prior_term(process, x)
        auto = build_process(
            ProcessSpec(
                spec.data,
                spec.basis,
                spec.prior,
                ScheduleSpec(order="variance", softness=1.0, clip=True),
            ),
            x,
        )
        lt_auto = prior_term(auto, x)
        lines.append(
            f"| {prior} | {gn:g} | {lt_old:.4g} | {lt_new:.4g} | "
            f"{auto.schedule.gamma_noise:.2f} | {lt_auto:.4f} |"
        )


def app_rows(lines: list[str]) -> None:
    from ui import state

    settings = {
        "defaults": state.PROCESS_DEFAULTS,
        "B defaults (Forward noising)": state.B_DEFAULTS,
    }
    settings |= {p["name"]: p["settings"] for p in state.PRESETS}
    names = sorted(DATASETS)
    lines += [
        "",
        "## 2. Every default and preset, every dataset at 32x32 "
        f"(L_T in nats; bound {L_T_TARGET:g})",
        "",
        "| settings | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    worst = 0.0
    data = {name: load_dataset(name, 32) for name in names}
    for label, values in settings.items():
        cells = []
        for name in names:
            spec = state.process_spec(values, DataSpec(name, 32))
            process = build_process(spec, data[name])
            lt = prior_term(process, data[name])
            worst = max(worst, lt)
            gn = getattr(process.schedule, "gamma_noise", None)
            cells.append(f"{lt:.3f}" + (f" (γ̃_n {gn:.1f})" if gn is not None else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Largest L_T: {worst:.3f} nat (bound {L_T_TARGET:g}: "
        + ("met" if worst <= L_T_TARGET else "MISSED")
        + ").",
    ]


def main() -> None:
    torch.set_num_threads(1)
    start = time.perf_counter()
    lines = ["# The ends of the process: prior term L_T (bench/bench_terminal.py)", ""]
    issue_rows(lines)
    app_rows(lines)
    lines += ["", f"Total {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    OUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
