"""rgdiff_core.glyphs: the handwriting-like digits dataset, its determinism and its disk cache."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import ImageFont

from rgdiff_core import data, glyphs
from rgdiff_core.data import DATASETS, load_dataset
from rgdiff_core.glyphs import load_glyphs, render_glyphs


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private disk cache folder for the test."""
    monkeypatch.setenv("RGDIFF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _rows(x):
    return {row.numpy().tobytes() for row in x.reshape(len(x), -1)}


def test_the_font_is_the_one_the_registry_names():
    font = ImageFont.load_default(size=glyphs.FONT_SIZE)
    assert isinstance(font, ImageFont.FreeTypeFont)
    assert font.getname() == ("Aileron", "Regular")
    assert "Aileron Regular" in DATASETS["glyphs"].source
    atlas = glyphs.glyph_atlas()
    assert atlas.shape == (1, 1, len(glyphs.STROKES) * glyphs.TILE, 10 * glyphs.TILE)
    tiles = atlas[0, 0].reshape(len(glyphs.STROKES), glyphs.TILE, 10, glyphs.TILE)
    tiles = tiles.permute(0, 2, 1, 3)  # (stroke, digit, y, x)
    ink = tiles.sum((2, 3))
    assert (ink > 0).all()  # every digit drawn in every stroke variant
    assert (ink.diff(dim=0) > 0).all()  # strokes get heavier down the rows
    edges = (tiles[..., 0, :], tiles[..., -1, :], tiles[..., :, 0], tiles[..., :, -1])
    assert max(e.max() for e in edges) == 0  # blank tile edges: the warp's clamping never bleeds


def test_deterministic_prefix_stable_and_seeded():
    x, y = render_glyphs(1050, 16, seed=5)
    assert x.dtype == torch.uint8 and x.shape == (1050, 1, 16, 16)
    assert y.dtype == torch.int64 and y.shape == (1050,)
    x2, y2 = render_glyphs(1050, 16, seed=5)
    assert x.numpy().tobytes() == x2.numpy().tobytes() and torch.equal(y, y2)
    # Image i does not depend on n (chunks have their own generators).
    x3, y3 = render_glyphs(40, 16, seed=5)
    assert torch.equal(x3, x[:40]) and torch.equal(y3, y[:40])
    # Parameters are drawn before the size enters: same digits at every size.
    x32, y32 = render_glyphs(40, 32, seed=5)
    assert torch.equal(y32, y3)
    a, b = F.avg_pool2d(x32.float(), 2).flatten(1), x3.float().flatten(1)
    assert F.cosine_similarity(a, b).min() > 0.9
    # One thread whatever the caller's setting, which is restored.
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(render_glyphs(40, 16, seed=5)[0], x3)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    other, _ = render_glyphs(1050, 16, seed=6)
    assert not _rows(other) & _rows(x)


def test_levels_range_and_balance():
    x, y = render_glyphs(2000, 32, seed=0)
    assert x.min() == 0 and x.max() == 255
    assert (x.flatten(1).amax(1) == 255).all()  # every image's peak ink is full white
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 200))
    border = torch.cat([x[:, 0, 0], x[:, 0, -1], x[:, 0, :, 0], x[:, 0, :, -1]], 1)
    assert (border.amax(1) > 64).float().mean() < 0.01  # digits are rarely cut by the frame


def test_labels_match_the_glyphs():
    """1-nearest-neighbour from train seeds to a held-out seed; shuffled labels fail it."""
    x, y = render_glyphs(4000, 16, seed=0)
    xt, yt = render_glyphs(1000, 16, seed=1)
    nearest = torch.cdist(xt.flatten(1).float(), x.flatten(1).float()).argmin(1)
    assert (y[nearest] == yt).float().mean() > 0.9
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert (shuffled[nearest] == yt).float().mean() < 0.3


def test_disk_cache_round_trip(cache, monkeypatch):
    x, y = load_glyphs(16, 3, 120)
    path = glyphs.cache_path(16, 3, 120)
    assert path.parent == cache and path.exists()
    assert f"v{glyphs.VERSION}" in path.name and "16px" in path.name and "seed3" in path.name
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file left behind

    def fail(*args):
        raise AssertionError("regenerated although the cache was valid")

    monkeypatch.setattr(glyphs, "render_glyphs", fail)
    x2, y2 = load_glyphs(16, 3, 120)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert glyphs.cache_path(16, 3, 121) != path  # n, size and seed are all in the key
    assert glyphs.cache_path(32, 3, 120) != path and glyphs.cache_path(16, 4, 120) != path


def _flip_a_data_byte(raw):
    raw = bytearray(raw)
    raw[len(raw) // 2] ^= 0xFF
    return bytes(raw)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda raw: b"not a zip file",
        lambda raw: raw[: len(raw) // 2],  # truncated
        _flip_a_data_byte,  # caught by the zip member's CRC
        None,  # a valid file of the wrong shape
    ],
)
def test_corrupt_cache_is_regenerated(cache, corrupt):
    x, y = load_glyphs(16, 3, 120)
    path = glyphs.cache_path(16, 3, 120)
    if corrupt is None:
        np.savez(path, images=x.numpy()[:10], labels=y.numpy()[:10])
    else:
        path.write_bytes(corrupt(path.read_bytes()))
    assert glyphs._read(path, 16, 120) is None
    x2, y2 = load_glyphs(16, 3, 120)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert glyphs._read(path, 16, 120) is not None  # rewritten


def test_cache_off_or_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("RGDIFF_CACHE", "")
    assert glyphs.cache_dir() is None and glyphs.cache_path(16, 0, 10) is None
    x, _ = load_glyphs(16, 3, 10)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("RGDIFF_CACHE", str(blocker / "cache"))  # cannot be created
    x2, _ = load_glyphs(16, 3, 10)
    assert torch.equal(x, x2)
    monkeypatch.delenv("RGDIFF_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert glyphs.cache_dir() == tmp_path / "xdg" / "rgdiff"


def test_load_dataset_real_path():
    """The registered dataset through load_dataset, with the real (default) disk cache."""
    data._cached.cache_clear()
    x, y = load_dataset("glyphs", 32, "train", labels=True)
    xt, yt = load_dataset("glyphs", 32, "test", labels=True)
    info = DATASETS["glyphs"]
    assert x.shape == (info.n_train, 1, 32, 32) and xt.shape == (info.n_test, 1, 32, 32)
    assert info.n_train >= 50_000 and info.n_test == 10_000
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == -1 and x.max() == 1
    levels = (x[:5000] + 1) * 127.5  # the 256-level grid, x = q / 127.5 - 1
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert torch.equal(torch.bincount(y), torch.full((10,), info.n_train // 10))
    assert torch.equal(torch.bincount(yt), torch.full((10,), info.n_test // 10))
    q = ((x + 1) * 127.5).round().to(torch.uint8)
    qt = ((xt + 1) * 127.5).round().to(torch.uint8)
    assert not _rows(q) & _rows(qt)  # the splits share no image
    if glyphs.cache_dir() is not None and glyphs.cache_dir().exists():
        assert glyphs.cache_path(32, 0, info.n_train).exists()
    # Subsets carry their labels; without labels only x comes back.
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))[:7]
    sub, ys = load_dataset("glyphs", 32, n=7, generator=torch.Generator().manual_seed(1),
                           labels=True)  # fmt: skip
    assert torch.equal(sub, x[pick]) and torch.equal(ys, y[pick])
    assert torch.equal(load_dataset("glyphs", 32, n=5), x[:5])


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: render_glyphs(0, 16), "n"),
        (lambda: render_glyphs(2.0, 16), "n"),
        (lambda: render_glyphs(10, 12), "size"),
        (lambda: render_glyphs(10, 256), "size"),
        (lambda: render_glyphs(10, 16, seed=-1), "seed"),
        (lambda: render_glyphs(10, 16, seed=True), "seed"),
        (lambda: load_glyphs(16, 0, 0), "n"),
        (lambda: load_glyphs(24, 0, 10), "size"),
        (lambda: load_dataset("glyphs", 12), "size"),
        (lambda: load_dataset("glyphs", 32, "val"), "split"),
        (lambda: load_dataset("glyphs", 32, labels="yes"), "labels"),
        (lambda: load_dataset("glyphs", 32, n=0), "n"),
    ],
)
def test_bad_arguments_name_the_argument(call, word):
    with pytest.raises(ValueError, match=word):
        call()
