"""Quality of trained checkpoints against the two exact baselines, in metrics that can tell.

For every checkpoint and softness in {inf, 3, 1, 0.3, 0.1}, n samples of each of
    net        the trained network (load_model)
    gaussian   the exact denoiser of a Gaussian fitted to the training set (no structure)
    empirical  the exact denoiser of the first EMPIRICAL_ITEMS training items (copies them)
all with one sampler (--method), seed and the accuracy advisor's step count for that schedule
(steps for a 2 % total-variance error with the data's diagonal Gaussian, as the app advises),
scored by rgdiff_core.metrics.sample_quality against the training split (FD, precision,
recall, nearest-neighbour ratio, in the shipped glyph classifier's features) and by held-out
bits/dim (rgdiff_core.likelihood.elbo, net and gaussian; the empirical bound is unbounded) of
the continuous density at the held-out images as they are. On 8-bit glyphs that bound is
negative (constant background pixels have a nearly degenerate density) and only comparisons
between denoisers mean something; the dequantised 8-bit bound is not usable with models fitted
to the undequantised images (237 bits/dim for glyphs_haar: the dequantisation noise is far
outside the density's scale at the background pixels).
The empirical denoiser is sampled at --cond-softness only (it copies training items at every
softness). Conditioning (net and gaussian, at --cond-softness), one held-out image per sample as the
source, tasks by basis: pixel: left half known, centre square known, extension by 8 columns
(the window of conditioning.extend_columns at stride 8: the source's last 24 columns known);
wavelet: super-resolution from the coarse 8 x 8 level; DCT / Fourier: low-pass |k| <= 4 known.
Their FD against held-out images (another n of them; for the extension, those images moved
left by 8 columns, background filling the new ones: the window's truth) is compared with the
unconditional samples' FD against the held-out images.

Criteria (the issue's), per checkpoint and softness, printed as ok / FAIL:
    FD(net) < FD(gaussian) - 5 s.e.,  FD(net) <= 3 x FD(held-out)
    precision >= 0.7, recall >= 0.5, 0.9 <= NN ratio <= 1.3
    bits/dim(net) < bits/dim(gaussian)
    conditioning: FD(completed) <= 2 x FD(unconditional), both against held-out images

Every cell (model, softness, denoiser, task) is appended to --cells (JSON lines) as soon as it
is done and skipped when found there with the same n, steps and method: a stopped run resumes.

    python bench/bench_models.py --models assets/models/glyphs_haar.pt --n 500
    python bench/bench_models.py --table   # only print the table of the cells file
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rgdiff_core import conditioning as cond  # noqa: E402
from rgdiff_core.accuracy import diagonal_gaussian, steps_for_accuracy  # noqa: E402
from rgdiff_core.classifier import classifier_features  # noqa: E402
from rgdiff_core.data import load_dataset  # noqa: E402
from rgdiff_core.denoisers import load_checkpoint, load_model  # noqa: E402
from rgdiff_core.denoisers.registry import DenoiserSpec, build_denoiser  # noqa: E402
from rgdiff_core.likelihood import elbo  # noqa: E402
from rgdiff_core.metrics import frechet_distance, sample_quality  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402

SOFTNESS = (math.inf, 3.0, 1.0, 0.3, 0.1)
EMPIRICAL_ITEMS = 1000
BATCH = 250
DEFAULT_CELLS = ROOT / "bench" / "results" / "models_cells.jsonl"


def _key(row: dict) -> tuple:
    return (row["model"], row["softness"], row["denoiser"], row["task"], row["n"], row["steps"])


def _load_cells(path: Path) -> dict:
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {_key(r): r for r in rows}


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def advised_steps(process, train: torch.Tensor, method: str) -> int:
    """The app's advice: steps for 2 % with the data's diagonal Gaussian (ui/advisor.py)."""
    return steps_for_accuracy(process, diagonal_gaussian(process, train), method=method, tol=0.02)


def _draw(process, den, n, steps, method, seed, known=None) -> torch.Tensor:
    gen = torch.Generator(device=process.device).manual_seed(seed)
    out = []
    for i in range(0, n, BATCH):
        part = None
        if known is not None:
            part = (known[0], known[1][i : i + BATCH])
        size = min(BATCH, n - i)
        out.append(sample(process, den, size, steps, method, generator=gen, known=part).cpu())
    return torch.cat(out).clamp(-1, 1)


def _known(process, task: str, sources: torch.Tensor):
    """(mask (D,), values (n, D)) of `task` for every source image, or None (not this basis)."""
    name = process.basis.name
    if task in ("left_half", "centre_square") and name == "pixel":
        mask = cond.inpainting_mask(process.shape, task).flatten()
    elif task == "superres_8" and name == "wavelet":
        mask = cond.wavelet_condition(process, sources[:1], 8)[0].cpu()
    elif task == "lowpass_4" and name in ("dct", "fourier"):
        mask = cond.lowpass_condition(process, sources[:1], 4.0)[0].cpu()
    else:
        return None
    with torch.no_grad():
        values = process.encode(sources.to(process.device))
    return mask.to(process.device), values


TASKS = ("left_half", "centre_square", "superres_8", "lowpass_4", "extend_8")


def _shift_left(images: torch.Tensor, cols: int) -> torch.Tensor:
    """Images moved left by `cols` columns, the freed columns at each image's background (its
    minimum): what an extension window of the data looks like."""
    out = images.new_empty(images.shape)
    out[..., :-cols] = images[..., cols:]
    out[..., -cols:] = images.amin(dim=(1, 2, 3), keepdim=True)
    return out


def _conditional(process, den, task, sources, steps, method, seed) -> torch.Tensor | None:
    if task == "extend_8":  # one window of conditioning.extend_columns with stride 8, batched
        if process.basis.name != "pixel":
            return None
        width = process.shape[2]
        shifted = _shift_left(sources, 8)  # the canvas's last W - 8 columns, known
        cols = torch.arange(width).expand(process.shape)
        mask = (cols < width - 8).flatten().to(process.device)
        with torch.no_grad():
            values = process.encode(shifted.to(process.device))
        return _draw(process, den, len(sources), steps, method, seed, (mask, values))
    known = _known(process, task, sources)
    if known is None:
        return None
    return _draw(process, den, len(sources), steps, method, seed, known)


def evaluate(path: Path, args, cells: dict, cells_path: Path) -> None:
    ckpt = load_checkpoint(path, map_location="cpu")
    train = load_dataset(ckpt["dataset"], ckpt["size"], "train")
    test = load_dataset(ckpt["dataset"], ckpt["size"], "test")
    n, seed = args.n, 0
    sources, reference = test[:n], test[n : 2 * n]
    f_ref = classifier_features(reference, "held-out reference")
    for softness in args.softness:
        process, net = load_model(path, softness, device=args.device)
        steps = advised_steps(process, train, args.method)
        dens = {"net": lambda p=process, d=net: d}
        dens["gaussian"] = lambda p=process: build_denoiser(DenoiserSpec("gaussian_fit"), p, train)
        dens["empirical"] = lambda p=process: build_denoiser(
            DenoiserSpec("empirical"), p, train[:EMPIRICAL_ITEMS]
        )
        built = {}
        for name in ("net", "gaussian", "empirical"):
            if name == "empirical" and softness != args.cond_softness:
                continue  # it copies training items at every softness; one row shows it
            tasks = ["uncond"]
            if name != "empirical" and softness == args.cond_softness:
                tasks += list(TASKS)
            for task in tasks:
                row = {
                    "model": path.stem,
                    "softness": softness,
                    "denoiser": name,
                    "task": task,
                    "n": n,
                    "steps": steps,
                    "method": args.method,
                }
                if _key(row) in cells:
                    continue
                den = built.setdefault(name, dens[name]())
                start = time.perf_counter()
                with torch.no_grad():
                    if task == "uncond":
                        x = _draw(process, den, n, steps, args.method, seed)
                    else:
                        x = _conditional(process, den, task, sources, steps, args.method, seed)
                if x is None:
                    continue
                f_cmp = f_ref
                if task == "extend_8":  # the truth of the window: held-out images moved left
                    f_cmp = classifier_features(_shift_left(reference, 8), "moved reference")
                fd_h = frechet_distance(classifier_features(x, "samples"), f_cmp)
                row.update(fd_vs_held_out=fd_h.value, fd_vs_held_out_se=fd_h.se)
                if task == "uncond":
                    q = sample_quality(x, train, test[2 * n :], n=n)
                    row.update({k: v for k, v in q.items() if not k.startswith("class_hist")})
                    row["classes"] = q["class_histogram"]
                    if name != "empirical":
                        gen = torch.Generator().manual_seed(1)
                        e = elbo(process, den, test[: args.n_bpd], n_t=args.n_t, generator=gen)
                        row.update(bpd=e.bpd, bpd_se=e.stderr)
                row["seconds"] = time.perf_counter() - start
                cells[_key(row)] = row
                _append(cells_path, row)
                print(_line(row), flush=True)


def _line(r: dict) -> str:
    s = "∞" if math.isinf(r["softness"]) else f"{r['softness']:g}"
    out = f"{r['model']:22s} s={s:<4} {r['denoiser']:9s} {r['task']:13s} {r['steps']:4d} steps"
    out += f"  FD/held-out {r['fd_vs_held_out']:8.1f}"
    if r["task"] == "uncond":
        out += (
            f"  FD {r['fd']:7.1f} ± {r['fd_se']:5.1f}  P {r['precision']:.2f}  "
            f"R {r['recall']:.2f}  NN {r['nn_ratio']:.2f}"
        )
        if "bpd" in r:
            out += f"  {r['bpd']:.3f} ± {r['bpd_se']:.3f} bits/dim"
    return out + f"  ({r['seconds']:.0f} s)"


def _fmt(v, digits=1, se=None):
    if v is None:
        return "—"
    text = f"{v:.{digits}f}"
    return text if se is None else f"{text} ± {se:.{digits}f}"


def table(cells: dict) -> str:
    """Markdown: one row per (model, softness, denoiser) with the criteria's verdicts."""
    rows = list(cells.values())
    lines = [
        "| model | s | denoiser | steps | FD (held-out FD) | precision | recall | NN ratio "
        "| bits/dim | conditioning FD / uncond. FD | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in sorted({r["model"] for r in rows}):
        for softness in SOFTNESS:
            get = {
                (r["denoiser"], r["task"]): r
                for r in rows
                if r["model"] == model and r["softness"] == softness
            }
            for name in ("net", "gaussian", "empirical"):
                r = get.get((name, "uncond"))
                if r is None:
                    continue
                ratios = [
                    f"{t}: {c['fd_vs_held_out'] / r['fd_vs_held_out']:.2f}"
                    for (d, t), c in sorted(get.items())
                    if d == name and t != "uncond"
                ]
                verdict = _verdict(get, name) if name == "net" else ""
                s = "∞" if math.isinf(softness) else f"{softness:g}"
                lines.append(
                    f"| {model} | {s} | {name} | {r['steps']} | "
                    f"{_fmt(r['fd'], 1, r['fd_se'])} ({r['fd_held_out']:.1f}) | "
                    f"{r['precision']:.2f} | {r['recall']:.2f} | {r['nn_ratio']:.2f} | "
                    f"{_fmt(r.get('bpd'), 3, r.get('bpd_se'))} | {'; '.join(ratios) or '—'} | "
                    f"{verdict} |"
                )
    return "\n".join(lines)


def _verdict(get: dict, name: str) -> str:
    r, g = get[(name, "uncond")], get.get(("gaussian", "uncond"))
    checks = {
        "FD<Gauss-5se": g is not None and r["fd"] < g["fd"] - 5 * max(r["fd_se"], g["fd_se"]),
        "FD<=3x held-out": r["fd"] <= 3 * r["fd_held_out"],
        "P>=0.7": r["precision"] >= 0.7,
        "R>=0.5": r["recall"] >= 0.5,
        "NN in [0.9,1.3]": 0.9 <= r["nn_ratio"] <= 1.3,
        "bpd<Gauss": g is not None and "bpd" in r and r["bpd"] < g.get("bpd", -math.inf),
    }
    conds = [c for (d, t), c in get.items() if d == name and t != "uncond"]
    if conds:
        checks["cond<=2x"] = all(c["fd_vs_held_out"] <= 2 * r["fd_vs_held_out"] for c in conds)
    failed = [k for k, ok in checks.items() if not ok]
    return "ok" if not failed else "FAIL: " + ", ".join(failed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="checkpoint paths")
    parser.add_argument("--n", type=int, default=500, help="samples per cell (issue: 1000)")
    parser.add_argument("--method", default="heun_ode", help="sampler (rgdiff_core.samplers)")
    parser.add_argument(
        "--softness", type=float, nargs="*", default=list(SOFTNESS), help="softness values"
    )
    parser.add_argument(
        "--cond-softness",
        type=float,
        default=1.0,
        help="softness of the conditioning tasks and of the empirical denoiser's row",
    )
    parser.add_argument("--n-bpd", type=int, default=200, help="held-out images for bits/dim")
    parser.add_argument("--n-t", type=int, default=16, help="ELBO strata in t per image")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cells", default=str(DEFAULT_CELLS), help="JSON-lines results file")
    parser.add_argument("--table", action="store_true", help="print the cells' table and stop")
    args = parser.parse_args()
    cells_path = Path(args.cells)
    cells = _load_cells(cells_path)
    if not args.table:
        paths = [Path(p) for p in args.models] if args.models else []
        print(f"device {args.device}, n={args.n}, {args.method}, torch {torch.__version__}")
        for path in paths:
            evaluate(path, args, cells, cells_path)
    print(table(cells))


if __name__ == "__main__":
    main()
