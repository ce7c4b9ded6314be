"""Checks that only one basis family can fail (docs/maths.md §3, §6.2): Fourier conjugate pairs
and frequencies, DCT basis functions, the wavelet basis against PyWavelets. The invariants every
basis shares are in test_bases.py."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rgdiff_core.bases import make_basis

pywt = pytest.importorskip("pywt")

WAVELETS = ["haar", "db2", "db4", "sym3", "coif1"]


def _x(shape, n=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64).to(dtype)


def _pywt_flat(x: np.ndarray, wavelet: str, levels: int) -> np.ndarray:
    with warnings.catch_warnings():  # "level too high": pywt still computes the periodized DWT
        warnings.simplefilter("ignore")
        coeffs = pywt.wavedec2(x, wavelet, mode="periodization", level=levels, axes=(-2, -1))
    parts = [coeffs[0]] + [band for level in coeffs[1:] for band in level]
    b, c = x.shape[:2]
    return np.concatenate([p.reshape(b, c, -1) for p in parts], -1).reshape(b, -1)


# ---------------------------------------------------------------- fourier


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 6, 9), (1, 5, 7), (1, 2, 2)])
def test_fourier_frequencies_and_basis_functions(shape):
    basis = make_basis("fourier", shape)
    _, h, w = shape
    freq = basis.frequencies()
    assert freq.shape == (basis.dim, 2) and freq.dtype == torch.int64
    assert (freq[:, 0] >= -(h // 2)).all() and (freq[:, 0] <= (h - 1) // 2).all()
    assert (freq[:, 1] >= -(w // 2)).all() and (freq[:, 1] <= (w - 1) // 2).all()
    torch.testing.assert_close(basis.scale(), freq.float().norm(dim=1))
    # each basis image is a normalised cos or sin of its own frequency
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    theta = 2 * math.pi * (freq[:, 0, None, None] * rows / h + freq[:, 1, None, None] * cols / w)
    images = basis.basis_images(torch.arange(basis.dim)).double().sum(1)  # other channels are 0
    cos_n = theta.cos() / theta.cos().flatten(1).norm(dim=1)[:, None, None]
    sin_n = theta.sin() / theta.sin().flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
    cos_hit = (images * cos_n).flatten(1).sum(1).abs() > 1 - 1e-6
    sin_hit = (images * sin_n).flatten(1).sum(1).abs() > 1 - 1e-6
    assert (cos_hit ^ sin_hit).all()
    # the cos/sin components of a pair are adjacent: cos first, sin right after
    ch0 = freq[: h * w]
    for i in torch.nonzero(sin_hit[: h * w]).flatten():
        assert i > 0 and torch.equal(ch0[i - 1], ch0[i]) and cos_hit[i - 1]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 6, 9), (1, 5, 7)])
def test_fourier_pure_cosine_stays_in_its_pair(shape):
    basis = make_basis("fourier", shape)
    _, h, w = shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    freq = basis.frequencies()
    for ky, kx in [(0, 1), (1, 0), (1, 2), (-2, 1), (h // 2, 0), (h // 2, w // 2), (0, 0)]:
        img = torch.cos(2 * math.pi * (ky * rows.double() / h + kx * cols.double() / w) + 0.3)
        c = basis.encode(img[None, None])[0]
        k = torch.tensor([ky, kx])
        n = torch.tensor([h, w])
        match = (((freq - k) % n == 0).all(1)) | (((freq + k) % n == 0).all(1))
        assert 1 <= match.sum() <= 2
        assert c[~match].abs().max() < 1e-10
        torch.testing.assert_close(c[match].norm(), img.norm())
        torch.testing.assert_close(basis.scale()[match].double(), freq[match].double().norm(dim=1))


@given(h=st.integers(2, 40), w=st.integers(2, 40), ch=st.integers(1, 3))
@settings(max_examples=25, deadline=None)
def test_fourier_any_size_roundtrip_and_norm(h, w, ch):
    basis = make_basis("fourier", (ch, h, w))
    x = _x((ch, h, w), n=2, dtype=torch.float64)
    c = basis.encode(x)
    torch.testing.assert_close(basis.decode(c), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(c.norm(dim=1), x.flatten(1).norm(dim=1), atol=0, rtol=1e-12)
    n_self = (1 + (h % 2 == 0)) * (1 + (w % 2 == 0))  # modes with 2k = 0
    n_modes = n_self + (h * w - n_self) // 2  # each other mode shares two components
    assert len(torch.unique(basis.frequencies()[: h * w], dim=0)) == n_modes


# ---------------------------------------------------------------- dct


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 5, 7)])
def test_dct_basis_images_are_cosine_products(shape):
    basis = make_basis("dct", shape)
    _, h, w = shape

    def m(n):
        k, j = torch.arange(n)[:, None].double(), torch.arange(n)[None].double()
        out = math.sqrt(2 / n) * torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
        out[0] /= math.sqrt(2)
        return out

    freq = basis.frequencies()
    assert freq.dtype == torch.int64 and freq.shape == (basis.dim, 2)
    expected = m(h)[freq[:, 0], :, None] * m(w)[freq[:, 1], None, :]
    images = basis.basis_images(torch.arange(basis.dim)).double()[:, 0]
    torch.testing.assert_close(images, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(basis.scale(), freq.float().norm(dim=1) / 2)
    assert [n for n, _ in basis.groups()][:2] == ["|k|=0", "|k|=1"]


# ---------------------------------------------------------------- wavelet


@pytest.mark.filterwarnings("ignore:Level value")  # pywt: long filter on a short side
@pytest.mark.parametrize("wavelet", WAVELETS)
@pytest.mark.parametrize("side,levels", [(8, 1), (8, 3), (16, 2), (32, 5)])
def test_wavelet_matches_pywt(wavelet, side, levels):
    basis = make_basis("wavelet", (2, side, side), wavelet=wavelet, levels=levels)
    x = _x((2, side, side), n=3, dtype=torch.float64)
    ref = torch.from_numpy(_pywt_flat(x.numpy(), wavelet, levels))
    torch.testing.assert_close(basis.encode(x), ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(basis.encode(x.float()), ref.float(), atol=1e-5, rtol=0)
    # decode of arbitrary coefficients is pywt.waverec2 of the same coefficient list
    c = _x((basis.dim,), n=3, dtype=torch.float64, seed=4)
    flat, n = c.reshape(3, 2, -1).numpy(), side >> levels
    coeffs, start = [flat[..., : n * n].reshape(3, 2, n, n)], n * n
    for j in range(levels):
        m = n << j
        bands = flat[..., start : start + 3 * m * m].reshape(3, 2, 3, m, m)
        coeffs.append(tuple(bands[:, :, i] for i in range(3)))
        start += 3 * m * m
    rec = pywt.waverec2(coeffs, wavelet, mode="periodization", axes=(-2, -1))
    torch.testing.assert_close(basis.decode(c), torch.from_numpy(rec), atol=1e-9, rtol=0)


def test_wavelet_layout():
    basis = make_basis("wavelet", (2, 16, 16), wavelet="db2", levels=2)
    names = [n for n, _ in basis.groups()]
    assert names == ["approx", "L1 H", "L1 V", "L1 D", "L2 H", "L2 V", "L2 D"]
    sizes = [len(idx) for _, idx in basis.groups()]
    assert sizes == [2 * 16, 2 * 16, 2 * 16, 2 * 16, 2 * 64, 2 * 64, 2 * 64]
    scale = basis.scale()[:256]
    assert scale[:16].eq(0).all() and scale[16:64].eq(1).all() and scale[64:].eq(2).all()
    pos = basis.positions()
    torch.testing.assert_close(pos[0], torch.tensor([1.5, 1.5]))  # approx cell of side 4
    torch.testing.assert_close(pos[64], torch.tensor([0.5, 0.5]))  # first finest H cell
    torch.testing.assert_close(pos[256], pos[0])  # channel 1 repeats channel 0
    assert basis.spec() == {"name": "wavelet", "shape": [2, 16, 16], "wavelet": "db2", "levels": 2}
    assert make_basis("wavelet", (1, 32, 32)).levels == 5  # default: full depth


@given(
    log_side=st.integers(3, 6),
    data=st.data(),
    wavelet=st.sampled_from(WAVELETS),
    ch=st.integers(1, 2),
)
@settings(max_examples=20, deadline=None)
def test_wavelet_random_sizes_roundtrip_norm_and_pywt(log_side, data, wavelet, ch):
    side = 2**log_side
    levels = data.draw(st.integers(1, log_side), label="levels")
    basis = make_basis("wavelet", (ch, side, side), wavelet=wavelet, levels=levels)
    x = _x((ch, side, side), n=2, dtype=torch.float64)
    c = basis.encode(x)
    torch.testing.assert_close(basis.decode(c), x, atol=1e-12, rtol=0)
    torch.testing.assert_close(c.norm(dim=1), x.flatten(1).norm(dim=1), atol=0, rtol=1e-12)
    ref = torch.from_numpy(_pywt_flat(x.numpy(), wavelet, levels))
    torch.testing.assert_close(c, ref, atol=1e-9, rtol=0)
