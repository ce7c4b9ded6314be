"""Pictures of 64 samples per checkpoint and softness: docs/models/NAME.png.

One image per checkpoint: five 8 x 8 grids side by side (softness inf, 3, 1, 0.3, 0.1), each
from the same seed with dpm2m at the accuracy advisor's step count (2 % total variance with
the data's diagonal Gaussian), nearest-neighbour x2, the softness and steps above each grid.

    python scripts/sample_grids.py assets/models/glyphs_haar.pt [more.pt ...] [--out docs/models]
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

from rgdiff_core import viz  # noqa: E402
from rgdiff_core.accuracy import diagonal_gaussian, steps_for_accuracy  # noqa: E402
from rgdiff_core.data import load_dataset  # noqa: E402
from rgdiff_core.denoisers import load_checkpoint, load_model  # noqa: E402
from rgdiff_core.samplers import sample  # noqa: E402

SOFTNESS = (math.inf, 3.0, 1.0, 0.3, 0.1)


def grids(path: Path, n: int = 64, method: str = "dpm2m", seed: int = 0) -> tuple[list, list]:
    ckpt = load_checkpoint(path, map_location="cpu")
    train = load_dataset(ckpt["dataset"], ckpt["size"], "train")[:1000]
    cells, labels = [], []
    for s in SOFTNESS:
        process, den = load_model(path, softness=s)
        steps = steps_for_accuracy(
            process, diagonal_gaussian(process, train), method=method, tol=0.02
        )
        start = time.perf_counter()
        with torch.no_grad():
            x = sample(
                process, den, n, steps, method, generator=torch.Generator().manual_seed(seed)
            )
        grid = viz.image_grid(x.clamp(-1, 1), ncols=8, pad=1, pad_value=0.2)
        cells.append(viz.upscale(viz.to_uint8(grid[0]), 2))
        name = "inf" if math.isinf(s) else f"{s:g}"  # the built-in font has no ∞
        labels.append(f"s = {name}, {steps} steps")
        print(
            f"{path.stem} s={name}: {steps} steps, {time.perf_counter() - start:.1f} s", flush=True
        )
    return cells, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", default=str(ROOT / "docs" / "models"))
    parser.add_argument("--method", default="dpm2m")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for p in args.models:
        path = Path(p)
        cells, labels = grids(path, method=args.method)
        img = viz.image_table([cells], col_labels=labels, title=f"{path.stem}: 64 samples each")
        (out / f"{path.stem}.png").write_bytes(viz.encode_png(img))
        print(f"wrote {out / (path.stem + '.png')}")


if __name__ == "__main__":
    main()
