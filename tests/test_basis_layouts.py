"""Coefficient layouts (viz.coefficient_layout): each basis draws a coefficient vector its own way.

The expected layouts below were recorded from the implementation before the layouts moved into
the basis classes, on c_i = (7 i mod D) - D // 2, whose integer entries make every value exact:
pixel, wavelet and DCT layouts are |c_i| or c_i rearranged, and a Fourier cell is
sqrt(S) with S a sum of halves of squares, stored here as the integer 2 S.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rgdiff_core import viz
from rgdiff_core.bases import make_basis

pytest.importorskip("pywt")

IMAGES = {  # id -> (name, shape, options, title, x, y, (x_title, y_title), bands, values)
    "pixel": (
        "pixel", (2, 4, 4), {},
        "pixel values", [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], ("column", "row"),
        [],
        [[-16, -9, -2, 5, 0, 7, 14, -11], [12, -13, -6, 1, -4, 3, 10, -15],
         [8, 15, -10, -3, -8, -1, 6, 13], [4, 11, -14, -7, -12, -5, 2, 9]],
    ),
    "fourier": (
        "fourier", (2, 4, 4), {},
        "|F(k)|, k = 0 at the centre", [-2, -1, 0, 1, -2, -1, 0, 1], [-2, -1, 0, 1],
        ("k_x", "k_y"),
        [],
        [[98, 25, 450, 25, 162, 313, 2, 313], [317, 65, 169, 205, 29, 289, 137, 109],
         [200, 85, 512, 85, 72, 245, 0, 245], [317, 205, 169, 65, 29, 109, 137, 289]],
    ),
    "fourier-odd": (
        "fourier", (1, 3, 5), {},
        "|F(k)|, k = 0 at the centre", [-2, -1, 0, 1, 2], [-1, 0, 1], ("k_x", "k_y"),
        [],
        [[37, 25, 37, 29, 29], [25, 49, 98, 49, 25], [29, 29, 37, 25, 37]],
    ),
    "dct": (
        "dct", (2, 4, 4), {},
        "|DCT coefficient|", [0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 3], ("k_x", "k_y"),
        [],
        [[16, 9, 12, 15, 0, 7, 4, 1], [2, 5, 6, 3, 14, 11, 10, 13],
         [13, 1, 8, 11, 3, 15, 8, 5], [10, 4, 14, 7, 6, 12, 2, 9]],
    ),
    "dct-odd": (
        "dct", (1, 3, 5), {},
        "|DCT coefficient|", [0, 1, 2, 3, 4], [0, 1, 2], ("k_x", "k_y"),
        [],
        [[7, 0, 6, 4, 2], [7, 1, 5, 3, 6], [2, 3, 4, 5, 1]],
    ),
    "wavelet-haar": (
        "wavelet", (2, 4, 4), {"wavelet": "haar"},
        "haar wavelet pyramid, 2 levels", [0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], ("", ""),
        [(0, 0, 1, "approx"), (1, 0, 1, "L1 H"), (0, 1, 1, "L1 V"), (1, 1, 1, "L1 D"),
         (2, 0, 2, "L2 H"), (0, 2, 2, "L2 V"), (2, 2, 2, "L2 D")],
        [[-16, -2, 8, 15, 0, 14, -8, -1], [-9, 5, -10, -3, 7, -11, 6, 13],
         [12, -13, 4, 11, -4, 3, -12, -5], [-6, 1, -14, -7, 10, -15, 2, 9]],
    ),
    "wavelet-db2-l1": (
        "wavelet", (1, 4, 4), {"wavelet": "db2", "levels": 1},
        "db2 wavelet pyramid, 1 levels", [0, 1, 2, 3], [0, 1, 2, 3], ("", ""),
        [(0, 0, 2, "approx"), (2, 0, 2, "L1 H"), (0, 2, 2, "L1 V"), (2, 2, 2, "L1 D")],
        [[-8, -1, 0, 7], [6, -3, -2, 5], [4, -5, -4, 3], [2, -7, -6, 1]],
    ),
}  # fmt: skip


def _c(d: int) -> np.ndarray:
    return (np.arange(d) * 7 % d - d // 2).astype(np.float64)


def _exact(a: np.ndarray, expected: np.ndarray) -> None:
    assert a.dtype == expected.dtype and np.array_equal(a, expected)


@pytest.mark.parametrize("case", list(IMAGES))
def test_image_layouts_are_pinned(case):
    name, shape, options, title, x, y, (x_title, y_title), bands, values = IMAGES[case]
    basis = make_basis(name, shape, **options)
    layout = viz.coefficient_layout(basis, _c(basis.dim))
    assert (layout.kind, layout.title, layout.x_title, layout.y_title) == (
        "image",
        title,
        x_title,
        y_title,
    )
    expected = np.array(values, dtype=np.float64)
    _exact(layout.values, np.sqrt(expected / 2) if name == "fourier" else expected)
    _exact(layout.x, np.array(x))
    _exact(layout.y, np.array(y))
    assert layout.bands == bands
    # a float32 tensor of the same integers draws the same
    again = viz.coefficient_layout(basis, torch.from_numpy(_c(basis.dim)).float())
    _exact(again.values, layout.values)


@pytest.mark.parametrize("max_bars,k", [(128, 16), (5, 5)])
def test_pca_layout_is_bars_over_rank(max_bars, k):
    data = torch.randn(20, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    basis = make_basis("pca", (1, 4, 4), data=data)
    c = _c(basis.dim)
    layout = viz.coefficient_layout(basis, c, max_bars=max_bars)
    assert (layout.kind, layout.title, layout.x_title, layout.y_title, layout.y) == (
        "bars",
        "PCA coefficients by rank",
        "rank (decreasing variance)",
        "coefficient",
        None,
    )
    _exact(layout.values, c[:k])
    _exact(layout.x, np.arange(k))
    assert layout.bands == []


@pytest.mark.parametrize("shape", [(2, 4, 4), (1, 3, 5), (1, 6, 6)])
def test_fourier_layout_is_the_centred_spectrum(shape):
    # independent of the basis' component order: |fft2| of the decoded image, k = 0 centred
    basis = make_basis("fourier", shape)
    c = np.random.default_rng(0).normal(size=basis.dim)
    x = basis.decode(torch.from_numpy(c)[None])[0].numpy()
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(x, norm="ortho"), axes=(-2, -1)))
    layout = viz.coefficient_layout(basis, c)
    np.testing.assert_allclose(layout.values, np.concatenate(list(spectrum), 1), atol=1e-12)


def test_layout_checks_the_length():
    with pytest.raises(ValueError, match="c must have 16 entries"):
        viz.coefficient_layout(make_basis("pixel", (1, 4, 4)), np.zeros(15))


def test_basis_function_grid_frames_every_tile():
    """Tiles sit in a coloured frame, so a flat white tile (the DCT's DC component) still
    shows on a white page; inside each tile the grey values are the basis function's."""
    bas = make_basis("dct", (1, 4, 4))
    grid = viz.basis_function_grid(bas, [0, 1, 2], ncols=2)
    assert grid.shape == (3, 1 + 2 * 5, 1 + 2 * 5)
    frame = np.asarray(viz.FRAME_RGB)[:, None]
    for line in (grid[:, 0, :], grid[:, -1, :], grid[:, :, 0], grid[:, 5, :], grid[:, :, 5]):
        np.testing.assert_allclose(line, np.broadcast_to(frame, line.shape))
    np.testing.assert_allclose(grid[:, 1:5, 1:5], 1.0)  # DC: flat, scaled to its peak
    tile = grid[:, 1:5, 6:10]
    assert np.all(tile[0] == tile[1]) and tile.min() < 0 < tile.max()  # grey, signed
    assert np.all(grid[:, 6:10, 6:10] == 1.0)  # the empty slot is white
    rgb = viz.to_uint8(grid)
    assert rgb.shape == (11, 11, 3) and tuple(rgb[0, 0]) == (43, 95, 140)
