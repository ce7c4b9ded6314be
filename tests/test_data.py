"""rgdiff_core.data: shipped and generated datasets, Gaussian random fields, uploaded images."""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from rgdiff_core import data
from rgdiff_core.data import (
    DATASETS,
    gaussian_field,
    gaussian_field_covariance,
    gaussian_field_spectrum,
    load_dataset,
    load_images,
)

# ---------------------------------------------------------------- datasets


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_shape_dtype_range(name, size):
    info = DATASETS[name]
    for split, count in (("train", info.n_train), ("test", info.n_test)):
        x = load_dataset(name, size, split)
        assert x.shape == (count, info.channels, size, size)
        assert x.dtype == torch.float32
        assert torch.isfinite(x).all()
        if info.gaussian:  # unclipped fields: pixel std 0.5
            assert abs(x.std().item() - data.FIELD_STD) < 0.05
        else:
            assert x.min() >= -1 and x.max() <= 1
            assert x.max() - x.min() > 1.5  # uses most of the range


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dataset_deterministic_and_copied(name):
    first = load_dataset(name, 16, "test")
    first.fill_(7.0)  # a caller modifying its result must not touch the cache
    data._cached.cache_clear()
    again = load_dataset(name, 16, "test")
    assert torch.equal(again, load_dataset(name, 16, "test"))
    assert not torch.equal(again, first)


def _rows(x):
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("digits", 8),
        ("digits", 32),
        ("patches", 16),
        ("patches", 64),
        ("shapes", 16),
        ("fields", 16),
        ("glyphs", 16),
    ],
)
def test_train_test_disjoint(name, size):
    train, test = load_dataset(name, size, "train"), load_dataset(name, size, "test")
    assert not _rows(train) & _rows(test)
    if name == "digits":  # the original 0..16 images are distinct too
        assert len(_rows(torch.cat([train, test]))) == len(train) + len(test)


def test_labels():
    for name in ("digits", "glyphs"):
        assert DATASETS[name].labelled
        x, y = load_dataset(name, 16, "test", labels=True)
        assert torch.equal(x, load_dataset(name, 16, "test"))
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        assert set(y.tolist()) == set(range(10))
    with np.load(data.ASSETS_DIR / "digits.npz") as f:
        expected = f["labels"][~f["is_test"]]
    _, y = load_dataset("digits", 8, labels=True)
    assert y.tolist() == expected.tolist()
    y[:] = 99  # a fresh copy, like x
    assert load_dataset("digits", 8, labels=True)[1].tolist() == expected.tolist()
    unlabelled = sorted(k for k, v in DATASETS.items() if not v.labelled)
    assert unlabelled == ["fields", "patches", "shapes"]
    for name in unlabelled:
        with pytest.raises(ValueError, match=r"labels.*digits, glyphs"):
            load_dataset(name, 16, labels=True)


def test_digits_values_are_the_uci_grid():
    x = load_dataset("digits", 8, "train")
    levels = (x + 1) * 8
    assert torch.allclose(levels, levels.round(), atol=1e-5)
    assert len(x) + len(load_dataset("digits", 8, "test")) == 1797


def test_subset_n_and_generator():
    full = load_dataset("shapes", 16)
    assert torch.equal(load_dataset("shapes", 16, n=10), full[:10])
    g = torch.Generator().manual_seed(3)
    pick = load_dataset("shapes", 16, n=50, generator=g)
    again = load_dataset("shapes", 16, n=50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(pick, again)
    assert _rows(pick) <= _rows(full) and len(_rows(pick)) == 50


def test_fields_options():
    a = load_dataset("fields", 16, "test", exponent=2.0, mass=0.5)
    b = gaussian_field(500, 16, 2.0, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"name": "mnist"}, "digits"),  # lists the valid names
        ({"name": "digits", "size": 12}, "size"),
        ({"name": "digits", "size": 128}, "size"),
        ({"name": "digits", "split": "val"}, "split"),
        ({"name": "digits", "n": 0}, "n"),
        ({"name": "digits", "n": 10**6}, "n"),
        ({"name": "digits", "exponent": 2.0}, "exponent"),
        ({"name": "fields", "mass": 0.0}, "mass"),
        ({"name": "fields", "exponent": -1.0}, "exponent"),
        ({"name": "shapes", "labels": True}, "labels"),
        ({"name": "digits", "labels": 1}, "labels"),
    ],
)
def test_load_dataset_errors_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_dataset(**kwargs)


# ---------------------------------------------------------------- Gaussian random fields


def test_field_covariance_matches_monte_carlo():
    size, n = 8, 20_000
    cov = gaussian_field_covariance(size, exponent=3.0, mass=1.0)
    x = gaussian_field(n, size, generator=torch.Generator().manual_seed(0)).double()
    flat = x.reshape(n, -1)
    emp = flat.T @ flat / n  # the field has known mean zero
    err = torch.linalg.matrix_norm(emp - cov) / torch.linalg.matrix_norm(cov)
    # E||emp - C||_F^2 = (||C||_F^2 + tr(C)^2) / n for Gaussian data with known mean.
    expected = ((torch.linalg.matrix_norm(cov) ** 2 + cov.trace() ** 2) / n).sqrt()
    bound = 1.5 * expected / torch.linalg.matrix_norm(cov)
    assert err < bound
    # The bound has power: a nearby wrong spectrum fails it.
    for wrong in (gaussian_field_covariance(size, 2.5, 1.0), gaussian_field_covariance(size, 3, 2)):
        assert torch.linalg.matrix_norm(emp - wrong) / torch.linalg.matrix_norm(wrong) > bound


def test_field_covariance_structure():
    cov = gaussian_field_covariance(8, exponent=2.0, mass=0.5)
    assert cov.shape == (64, 64) and cov.dtype == torch.float64
    assert torch.equal(cov, cov.T)
    assert torch.linalg.eigvalsh(cov).min() > 0
    assert torch.allclose(cov.diagonal(), torch.full((64,), 0.25, dtype=torch.float64))
    # Circulant: the covariance only depends on the periodic offset.
    img = cov[0].reshape(8, 8)
    row = cov[8 * 3 + 5].reshape(8, 8)
    assert torch.allclose(row, torch.roll(img, shifts=(3, 5), dims=(0, 1)))


def test_field_pixel_variance_and_spectrum():
    spec = gaussian_field_spectrum(16, 3.0, 1.0)
    assert spec.shape == (16, 16) and torch.isclose(spec.mean(), torch.tensor(0.25).double())
    assert torch.equal(spec, spec.flip(0).roll(1, 0))  # even in k: the field is real
    x = gaussian_field(4000, 16, generator=torch.Generator().manual_seed(1))
    assert x.shape == (4000, 1, 16, 16) and x.dtype == torch.float32
    assert abs(x.var().item() - 0.25) < 0.02
    assert abs(gaussian_field(2000, 8, scale=1.0).var().item() - 1.0) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n": 0}, "n"),
        ({"size": 3}, "size"),
        ({"size": 129}, "size"),
        ({"exponent": -0.1}, "exponent"),
        ({"mass": 0.0}, "mass"),
        ({"scale": -1.0}, "scale"),
    ],
)
def test_field_errors_name_the_argument(kwargs, word):
    args = {"n": 2, "size": 8, **kwargs}
    with pytest.raises(ValueError, match=word):
        gaussian_field(**args)


# ---------------------------------------------------------------- uploaded images


def _encode(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_load_images_lives_in_images_and_is_public_in_data():
    from rgdiff_core import images

    assert load_images is images.load_images


def test_load_images_grey_png_exact():
    arr = np.zeros((8, 8), np.uint8)
    arr[:, 4:] = 255
    x = load_images([_encode(Image.fromarray(arr))], size=8)
    assert x.shape == (1, 1, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x[0, 0], torch.from_numpy(arr / 127.5 - 1).float())


def test_load_images_modes():
    white_rgb = Image.new("RGB", (12, 12), (255, 255, 255))
    half_alpha = Image.new("RGBA", (12, 12), (255, 255, 255, 128))
    palette = Image.new("RGB", (12, 12), (255, 0, 0)).convert("P")
    sixteen = Image.fromarray(np.full((12, 12), 65535, np.uint16))
    assert sixteen.mode == "I;16"
    files = [
        _encode(white_rgb, "JPEG", quality=95),
        _encode(half_alpha),  # composited on black -> 128/255
        _encode(palette),  # red -> luma 0.299
        _encode(sixteen),
        _encode(Image.new("LA", (12, 12), (255, 255))),
        _encode(Image.new("1", (12, 12), 1)),
        io.BytesIO(_encode(Image.fromarray(np.full((4, 4), 0.5, np.float32)), "TIFF")),
        _encode(Image.new("CMYK", (12, 12), (0, 0, 0, 0)), "JPEG"),  # white
    ]
    x = load_images(files, size=4)
    grey = (x + 1) / 2
    expected = [1.0, 128 / 255, 0.299, 1.0, 1.0, 1.0, 0.5, 1.0]
    assert torch.allclose(grey.mean((1, 2, 3)), torch.tensor(expected), atol=0.01)
    rgb = load_images([files[2]], size=4, channels=3)
    assert rgb.shape == (1, 3, 4, 4)
    assert torch.allclose(rgb.mean((2, 3)), torch.tensor([[1.0, -1.0, -1.0]]), atol=0.01)


def test_load_images_first_frame_crop_and_resize():
    frames = [Image.new("L", (10, 10), v) for v in (255, 0)]
    gif = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(gif)).n_frames == 2
    wide = np.zeros((20, 60), np.uint8)
    wide[:, 20:40] = 255  # only the centre square is white
    x = load_images([gif, io.BytesIO(_encode(Image.fromarray(wide)))], size=16)
    assert x.shape == (2, 1, 16, 16)
    assert torch.allclose(x, torch.ones_like(x), atol=1e-6)
    big = load_images(_encode(Image.new("RGB", (300, 200), (0, 0, 255))), size=32, channels=3)
    assert big.shape == (1, 3, 32, 32)


def _png_with_size(width, height):
    png = bytearray(_encode(Image.new("L", (4, 4))))
    png[16:24] = struct.pack(">II", width, height)  # IHDR width, height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"this is not an image", r"files\[1\].*not a recognised image"),
        (_encode(Image.new("L", (64, 64), 9))[:60], r"files\[1\].*truncated"),
        (_png_with_size(8000, 8000), r"files\[1\].*too large"),  # over our 50 MP limit
        (_png_with_size(30000, 30000), r"files\[1\].*too large"),  # over PIL's own limit
    ],
)
def test_load_images_refuses_bad_files(payload, match):
    good = _encode(Image.new("L", (4, 4)))
    with pytest.raises(ValueError, match=match):
        load_images([good, payload], size=4)


@pytest.mark.parametrize(
    ("files", "kwargs", "word"),
    [
        ([], {}, "files"),
        ([123], {}, r"files\[0\]"),
        ([b"x"], {"size": 0}, "size"),
        ([b"x"], {"channels": 2}, "channels"),
    ],
)
def test_load_images_argument_errors(files, kwargs, word):
    with pytest.raises(ValueError, match=word):
        load_images(files, **{"size": 8, **kwargs})
