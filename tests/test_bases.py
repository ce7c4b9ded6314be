"""Bases (docs/maths.md §3, §6.2): the registry, one invariant suite run over every registered
basis, and argument checks. Checks that only one family can fail (Fourier conjugate pairs, DCT
and wavelet against references) are in test_basis_families.py."""

from __future__ import annotations

import copy
import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rgdiff_core.bases import BASES, Basis, make_basis

pywt = pytest.importorskip("pywt")

# Construction options of each registered basis with options; any other runs with none (and
# with `data` if it needs_data). Test ids are the name, then the option values.
OPTIONS = {"wavelet": [{"wavelet": "haar"}, {"wavelet": "db4"}, {"wavelet": "sym3", "levels": 2}]}
SQUARE_ONLY = {"wavelet"}  # bases that need square power-of-two images
KINDS = {  # test id -> (registry name, options)
    "-".join([name, *map(str, options.values())]): (name, options)
    for name in BASES
    for options in OPTIONS.get(name, [{}])
}
SQUARE = [(1, 8, 8), (3, 8, 8), (1, 16, 16), (3, 16, 16), (1, 32, 32), (3, 32, 32)]
ODD = [(1, 5, 7), (3, 6, 9), (1, 9, 9), (2, 2, 3)]
CASES = [
    (kind, shape)
    for kind, (name, _) in KINDS.items()
    for shape in SQUARE + ([] if name in SQUARE_ONLY else ODD)
    if not (BASES[name].needs_data and math.prod(shape) > 1024)  # keeps PCA's dense eigh cheap
]
IDS = [f"{k}-{'x'.join(map(str, s))}" for k, s in CASES]
SMALL = [(k, s) for k, s in CASES if math.prod(s) <= 192]
SMALL_IDS = [f"{k}-{'x'.join(map(str, s))}" for k, s in SMALL]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@functools.cache
def _build(kind: str, shape: tuple[int, int, int]):
    name, options = KINDS[kind]
    if BASES[name].needs_data:
        g = torch.Generator().manual_seed(1)
        z = torch.randn(max(2 * math.prod(shape), 64), *shape, generator=g, dtype=torch.float64)
        data = z.cumsum(-1).cumsum(-2) / shape[-1] + 0.3 * z.mean(1, keepdim=True)
        options = {**options, "data": data}
    return make_basis(name, shape, **options)


def _x(shape, n=5, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g, dtype=torch.float64).to(dtype)


DESCRIPTIONS = {  # name -> (needs_data, option_names, positional, label)
    "pixel": (False, (), True, "pixel"),
    "pca": (True, (), False, "PCA"),
    "fourier": (False, (), False, "Fourier"),
    "dct": (False, (), False, "DCT"),
    "wavelet": (False, ("wavelet", "levels"), False, "wavelet"),
}


@pytest.mark.parametrize("name", list(BASES))
def test_registered_classes_describe_themselves(name):
    cls = BASES[name]
    assert cls.name == name
    assert type(cls.needs_data) is bool and type(cls.positional) is bool
    assert isinstance(cls.label, str) and cls.label
    assert isinstance(cls.option_names, tuple)
    assert all(isinstance(o, str) for o in cls.option_names)
    assert (cls.needs_data, cls.option_names, cls.positional, cls.label) == DESCRIPTIONS[name]


def test_registry_refuses_incomplete_or_duplicate_classes():
    before = dict(BASES)
    with pytest.raises(TypeError, match="label"):

        class Unlabelled(Basis):
            name = "unlabelled"
            needs_data, option_names, positional = False, (), False

    with pytest.raises(TypeError, match="taken"):

        class Impostor(Basis):
            name = "pixel"
            needs_data, option_names, positional, label = False, (), False, "impostor"

    assert BASES == before


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
    basis, cls = _build(kind, shape), BASES[KINDS[kind][0]]
    d, (ch, h, w) = basis.dim, shape
    assert basis.shape == shape and d == ch * h * w
    scale = basis.scale()
    assert scale.shape == (d,) and scale.is_floating_point() and (scale >= 0).all()
    per_channel = scale.reshape(1 if kind == "pca" else ch, -1)  # pca mixes the channels
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
    if cls.positional:  # component j of a channel is pixel (j // W, j % W)
        grid = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
        assert torch.equal(pos, grid.reshape(-1, 2).float().repeat(ch, 1))
    spec = json.loads(json.dumps(basis.spec()))
    assert spec["name"] == KINDS[kind][0] and spec["shape"] == list(shape)
    assert set(cls.option_names) <= set(spec)
    if not cls.needs_data:  # a fitted basis' spec does not carry its data
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
    if basis.state_dict():  # the cache must see the in-place change
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


@pytest.mark.parametrize("kind", list(KINDS))
def test_coefficient_layout_has_matching_axes(kind):
    basis = _build(kind, (2, 8, 8))
    c = _x((basis.dim,), n=1)[0]
    layout = basis.coefficient_layout(c, max_bars=40)
    assert layout.kind in ("image", "bars") and np.isfinite(layout.values).all()
    if layout.kind == "bars":
        assert layout.values.shape == layout.x.shape == (min(40, basis.dim),)
    else:
        assert layout.values.shape == (len(layout.y), len(layout.x))
    with pytest.raises(ValueError, match=f"c must have {basis.dim} entries"):
        basis.coefficient_layout(c[:-1])


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


def test_bases_package_imports_without_pywt():
    probe = (
        "import sys\n"
        "sys.modules['pywt'] = None\n"  # makes `import pywt` raise ImportError
        "from rgdiff_core.bases import make_basis\n"
        "make_basis('fourier', (1, 8, 8))\n"
        "try:\n    make_basis('wavelet', (1, 8, 8))\nexcept ImportError:\n    pass\n"
        "else:\n    sys.exit('wavelet basis built without pywt')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr or proc.stdout
