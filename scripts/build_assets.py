"""Rebuild the data assets shipped under ``assets/`` from their original sources.

Build-time only: needs ``pip install scikit-learn scikit-image`` (neither is a runtime
dependency; the library reads only the files written here). Deterministic: running it twice
writes byte-identical files, and it prints each file's size and SHA-256 so a rebuild can be
checked against ``assets/README.md``.

Written:
- ``assets/digits.npz``: the UCI 8x8 handwritten digits as bundled by scikit-learn
  (``images`` uint8 (1797, 8, 8) in 0..16, ``labels`` uint8 (1797,), ``is_test`` bool (1797,):
  a fixed 15 % held-out split, stratified by label, drawn with numpy's PCG64 seed 0).
- ``assets/patches/<name>.png``: CC0 / public-domain photographs bundled inside the
  scikit-image wheel, converted to 8-bit grey (ITU-R 601-2 luma) and resized with Lanczos so
  the long side is 256 px.

Usage: ``python scripts/build_assets.py [--out assets]``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
LONG_SIDE = 256
TEST_FRACTION = 0.15
SPLIT_SEED = 0

# skimage.data loader name -> licence statement from its docstring (skimage 0.26).
PATCH_SOURCES = {
    "camera": "CC0 by the photographer (Lav Varshney)",
    "astronaut": "NASA photograph; no known copyright restrictions, public domain",
    "chelsea": "CC0 by the photographer (Stefan van der Walt)",
    "coffee": "CC0 by the photographer (Rachel Michetti)",
    "rocket": "SpaceX photograph, released into the public domain",
}


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez, but with fixed zip timestamps so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _stratified_test_mask(labels: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n_test = int(round(TEST_FRACTION * len(idx)))
        is_test[rng.permutation(idx)[:n_test]] = True
    return is_test


def build_digits(out: Path) -> list[Path]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise RuntimeError("unexpected digits values; expected integers 0..16")
    labels = bunch.target.astype(np.uint8)
    flat = images.reshape(len(images), -1)
    if len(np.unique(flat, axis=0)) != len(flat):
        raise RuntimeError("digits contain duplicates; the split would need grouping")
    path = out / "digits.npz"
    _write_npz(
        path,
        {
            "images": images.astype(np.uint8),
            "labels": labels,
            "is_test": _stratified_test_mask(labels),
        },
    )
    return [path]


def build_patches(out: Path) -> list[Path]:
    import skimage.data

    folder = out / "patches"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PATCH_SOURCES:
        arr = getattr(skimage.data, name)()
        img = Image.fromarray(arr).convert("L")  # ITU-R 601-2 luma for RGB; no-op for grey
        w, h = img.size
        scale = LONG_SIDE / max(w, h)
        img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        path = folder / f"{name}.png"
        img.save(path, format="PNG", optimize=True)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets", help="assets folder")
    args = parser.parse_args()
    try:
        import skimage  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"{exc}: building assets needs `pip install scikit-learn scikit-image` "
            "(build time only)"
        ) from exc
    args.out.mkdir(parents=True, exist_ok=True)
    for path in build_digits(args.out) + build_patches(args.out):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        shown = path.relative_to(args.out.parent) if path.is_relative_to(args.out.parent) else path
        print(f"{shown}  {len(data):>8d} bytes  sha256 {digest}")


if __name__ == "__main__":
    main()
