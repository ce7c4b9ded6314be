"""Bases (docs/maths.md §3, §6.2): one invariant suite run over every registered basis, then checks
that only one basis can fail (Fourier conjugate pairs, DCT and wavelet against references)."""

from __future__ import annotations

import copy
import functools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rgdiff_core.bases import BASES, make_basis

pywt = pytest.importorskip("pywt")

KINDS = {  # test id -> (registry name, options); pca gets its data in _build
    "pixel": ("pixel", {}),
    "pca": ("pca", {}),
    "fourier": ("fourier", {}),
    "dct": ("dct", {}),
    "wavelet-haar": ("wavelet", {"wavelet": "haar"}),
    "wavelet-db4": ("wavelet", {"wavelet": "db4"}),
    "wavelet-sym3-l2": ("wavelet", {"wavelet": "sym3", "levels": 2}),
}
SQUARE = [(1, 8, 8), (3, 8, 8), (1, 16, 16), (3, 16, 16), (1, 32, 32), (3, 32, 32)]
ODD = [(1, 5, 7), (3, 6, 9), (1, 9, 9), (2, 2, 3)]
CASES = [
    (kind, shape)
    for kind, (name, _) in KINDS.items()
    for shape in SQUARE + ([] if name == "wavelet" else ODD)
    if not (name == "pca" and math.prod(shape) > 1024)  # keeps the dense eigh cheap
]
IDS = [f"{k}-{'x'.join(map(str, s))}" for k, s in CASES]
SMALL = [(k, s) for k, s in CASES if math.prod(s) <= 192]
SMALL_IDS = [f"{k}-{'x'.join(map(str, s))}" for k, s in SMALL]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
WAVELETS = ["haar", "db2", "db4", "sym3", "coif1"]


@functools.cache
def _build(kind: str, shape: tuple[int, int, int]):
    name, options = KINDS[kind]
    if name == "pca":
        g = torch.Generator().manual_seed(1)
        z = torch.randn(max(2 * math.prod(shape), 64), *shape, generator=g, dtype=torch.float64)
        options = {"data": z.cumsum(-1).cumsum(-2) / shape[-1] + 0.3 * z.mean(1, keepdim=True)}
    return make_basis(name, shape, **options)


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


def test_suite_covers_every_registered_basis():
    assert {name for name, _ in KINDS.values()} == set(BASES)


# ---------------------------------------------------------------- invariant suite


@pytest.mark.parametrize("kind,shape", CASES, ids=IDS)
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_roundtrip_and_norm(kind, shape, dtype, atol):
    basis = _build(kind, shape)
    x = _x(shape, dtype=dtype)
    c = basis.encode(x)
    assert c.shape == (5, basis.dim) and c.dtype == dtype
    y = basis.decode(c)
    assert y.shape == x.shape and y.dtype == dtype
    torch.testing.assert_close(y, x, atol=atol, rtol=0)
    torch.testing.assert_close(c.norm(dim=1), x.flatten(1).norm(dim=1), atol=0, rtol=atol)


@pytest.mark.parametrize("kind,shape", SMALL, ids=SMALL_IDS)
def test_white_noise_stays_white(kind, shape):
    basis = _build(kind, shape)
    n = 20_000
    c = basis.encode(_x(shape, n=n, dtype=torch.float64, seed=2))
    cov = c.T @ c / n
    # entries have Monte-Carlo std <= sqrt(2/n) = 0.01; a wrong normalisation is off by O(1)
    assert (cov - torch.eye(basis.dim, dtype=cov.dtype)).abs().max() < 0.06


@pytest.mark.parametrize("kind,shape", CASES, ids=IDS)
def test_batched_equals_per_sample(kind, shape):
    basis = _build(kind, shape)
    x = _x(shape, n=4, dtype=torch.float64, seed=3)  # float64: batched BLAS kernels round
    c = basis.encode(x)  # differently from single-row ones, by ~1e-6 in float32
    torch.testing.assert_close(
        c, torch.cat([basis.encode(xi[None]) for xi in x]), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        basis.decode(c), torch.cat([basis.decode(ci[None]) for ci in c]), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("kind,shape", CASES, ids=IDS)
def test_metadata_partition_and_order(kind, shape):
    basis = _build(kind, shape)
    d, (ch, h, w) = basis.dim, shape
    assert basis.shape == shape and d == ch * h * w
    scale = basis.scale()
    assert scale.shape == (d,) and scale.is_floating_point() and (scale >= 0).all()
    per_channel = scale.reshape(1 if kind == "pca" else ch, -1)
    assert (per_channel.diff(dim=1) >= 0).all(), "components must run coarse -> fine"
    groups = basis.groups()
    names = [name for name, _ in groups]
    assert len(set(names)) == len(names) and all(isinstance(n, str) for n in names)
    assert all(idx.dtype == torch.long and idx.numel() > 0 for _, idx in groups)
    assert torch.equal(torch.cat([idx for _, idx in groups]).sort().values, torch.arange(d))
    means = torch.stack([scale[idx].mean() for _, idx in groups])
    assert (means.diff() >= 0).all(), "groups must be ordered coarse -> fine"
    pos = basis.positions()
    if pos is not None:
        assert pos.shape == (d, 2) and pos.is_floating_point()
        assert (pos >= -0.5).all() and (pos[:, 0] <= h - 0.5).all() and (pos[:, 1] <= w - 0.5).all()
    spec = json.loads(json.dumps(basis.spec()))
    assert spec["name"] == KINDS[kind][0] and spec["shape"] == list(shape)
    if kind != "pca":  # pca's spec does not carry its data
        rebuilt = make_basis(spec.pop("name"), spec.pop("shape"), **spec)
        x = _x(shape, n=2)
        torch.testing.assert_close(rebuilt.encode(x), basis.encode(x))


@pytest.mark.parametrize("kind,shape", CASES, ids=IDS)
def test_basis_images_are_orthonormal_rows_of_u(kind, shape):
    basis = _build(kind, shape)
    d = basis.dim
    idx = torch.arange(d) if d <= 512 else torch.randperm(d, generator=torch.Generator())[:256]
    images = basis.basis_images(idx)
    assert images.shape == (len(idx), *shape) and images.dtype == torch.float32
    flat = images.flatten(1).double()
    torch.testing.assert_close(
        flat @ flat.T, torch.eye(len(idx), dtype=torch.float64), atol=1e-5, rtol=0
    )
    # image i is row i of U: encoding it gives the unit vector e_i
    expected = torch.zeros(len(idx), d)
    expected[torch.arange(len(idx)), idx] = 1
    torch.testing.assert_close(basis.encode(images), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_follows_device_and_dtype(kind):
    shape = (2, 8, 8)
    basis = copy.deepcopy(_build(kind, shape))
    x64 = _x(shape, dtype=torch.float64)
    ref = basis.encode(x64)
    basis = basis.double()  # buffers in float64; a float32 input still gives float32
    assert basis.encode(x64.float()).dtype == torch.float32
    assert basis.basis_images([0, 1]).dtype == torch.float64
    for device in DEVICES:
        moved = copy.deepcopy(basis).to(device)
        for dtype in (torch.float32, torch.float64):
            c = moved.encode(x64.to(device, dtype))
            assert c.device.type == device and c.dtype == dtype
            torch.testing.assert_close(c.cpu().double(), ref, atol=1e-5, rtol=0)
            y = moved.decode(c)
            assert y.device.type == device and y.dtype == dtype
        assert moved.scale().device.type == device
        # a basis left on the CPU follows an input on another device too
        assert basis.encode(x64.to(device)).device.type == device
    meta = copy.deepcopy(basis).to("meta")
    c = meta.encode(torch.empty(3, *shape, device="meta"))
    assert c.device.type == "meta" and c.shape == (3, basis.dim)
    assert meta.decode(c).shape == (3, *shape)


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_round_trip(kind):
    basis = _build(kind, (1, 8, 8))
    other = copy.deepcopy(basis)
    for buf in other.buffers():
        if buf.is_floating_point() and buf.numel():
            buf.mul_(2)
    x = _x((1, 8, 8))  # float32 input: uses cached float32 copies of the float64 buffers
    if kind != "pixel":  # the cache must see the in-place change (pixel has no buffers)
        assert not torch.allclose(other.encode(x), basis.encode(x))
    other.load_state_dict(basis.state_dict())  # in place: the cache must notice
    torch.testing.assert_close(other.encode(x), basis.encode(x))
    torch.testing.assert_close(other.decode(other.encode(x)), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradients_flow_through_encode_and_decode(kind):
    basis = _build(kind, (1, 8, 8))
    x = _x((1, 8, 8), n=2, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(basis.encode, (x,))
    c = basis.encode(x).detach().requires_grad_()
    assert torch.autograd.gradcheck(basis.decode, (c,))


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


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "shape",
    [
        (0, 8, 8),
        (5, 8, 8),
        (1, 1, 8),
        (1, 8, 257),
        (8, 8),
        "1x8x8",
        (1.0, 8, 8),
        (True, 8, 8),
        None,
    ],
)
def test_invalid_shape(shape):
    with pytest.raises(ValueError, match="shape"):
        make_basis("pixel", shape)


@pytest.mark.parametrize("name,shape,options,match", [
    ("nope", (1, 8, 8), {}, "name.*pixel"),
    ("pixel", (1, 8, 8), {"levels": 2}, "levels"),
    ("pca", (1, 8, 8), {}, "data"),
    ("pca", (1, 8, 8), {"data": torch.randn(10, 1, 8, 9)}, "data"),
    ("pca", (1, 8, 8), {"data": torch.randn(1, 1, 8, 8)}, "data"),
    ("pca", (1, 8, 8), {"data": torch.randn(10, 1, 8, 8), "floor": 0}, "floor"),
    ("pca", (4, 64, 64), {"data": torch.zeros(2, 4, 64, 64)}, "4096"),
    ("wavelet", (1, 8, 16), {}, "shape"),
    ("wavelet", (1, 12, 12), {}, "shape"),
    ("wavelet", (1, 8, 8), {"levels": 0}, r"levels.*1\.\.3"),
    ("wavelet", (1, 8, 8), {"levels": 4}, r"levels.*1\.\.3"),
    ("wavelet", (1, 8, 8), {"levels": 1.0}, "levels"),
    ("wavelet", (1, 8, 8), {"wavelet": "bior2.2"}, "wavelet"),
    ("wavelet", (1, 8, 8), {"wavelet": "nope"}, "wavelet"),
    ("wavelet", (1, 8, 8), {"wavelet": "dmey"}, "wavelet"),  # flagged orthogonal, but is not
])  # fmt: skip
def test_invalid_arguments(name, shape, options, match):
    with pytest.raises(ValueError, match=match):
        make_basis(name, shape, **options)


@pytest.mark.parametrize("kind", list(KINDS))
def test_invalid_inputs(kind):
    basis = _build(kind, (1, 8, 8))
    for bad in [torch.zeros(2, 1, 8, 9), torch.zeros(1, 8, 8), torch.zeros(2, 1, 8, 8).long()]:
        with pytest.raises(ValueError, match=r"^x must .*\(B, 1, 8, 8\)"):
            basis.encode(bad)
    for bad in [torch.zeros(2, 63), torch.zeros(64), np.zeros((2, 64))]:
        with pytest.raises(ValueError, match=r"^c must .*\(B, 64\)"):
            basis.decode(bad)
    for bad in [[64], -1, [0.5]]:
        with pytest.raises(ValueError, match="indices"):
            basis.basis_images(bad)


def test_bases_module_imports_without_pywt():
    path = Path(__file__).resolve().parents[1] / "rgdiff_core" / "bases.py"
    probe = (
        "import importlib.util, sys\n"
        "sys.modules['pywt'] = None\n"  # makes `import pywt` raise ImportError
        f"spec = importlib.util.spec_from_file_location('bases_probe', {str(path)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "mod.make_basis('fourier', (1, 8, 8))\n"
        "try:\n    mod.make_basis('wavelet', (1, 8, 8))\nexcept ImportError:\n    pass\n"
        "else:\n    sys.exit('wavelet basis built without pywt')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
