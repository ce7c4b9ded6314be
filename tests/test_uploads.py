"""Odd and hostile uploads, one test per case, through the library and through the pages.

Images (the sidebar's dataset uploader and Forward noising's own image): files that are not
images, truncated or corrupt files, decompression bombs, huge dimensions, every PIL mode a
common format stores, animated images. Schedule files (Schedule designer) and sampling
settings files (Sampling). Checkpoints (assets/models/*.pt, pointed at a temporary folder):
corrupt, foreign and hostile files, pickles that would create a file if they ran (they never
run: torch.load(weights_only=True)). Every bad file is refused with a message on the page
naming the file and what is wrong; the app keeps running and the other settings stay."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import app_errors, open_app_page
from PIL import Image

from rgdiff_core.data import load_images
from rgdiff_core.denoisers.checkpoints import load_checkpoint, load_network_denoiser
from ui import files

SIZE = 16


# ---------------------------------------------------------------- building files


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def ramp(h: int = 24, w: int = 24) -> np.ndarray:
    return (np.linspace(0, 1, h * w).reshape(h, w) * 255).astype(np.uint8)


def rgb() -> Image.Image:
    r = ramp()
    return Image.fromarray(np.stack([r, r.T, 255 - r], -1))


def chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (CRC fixed, so only the size is odd)."""
    png = bytearray(encoded(Image.new("L", (4, 4))))
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def with_chunk(tag: bytes, payload: bytes) -> bytes:
    good = encoded(Image.new("L", (8, 8), 100))
    return good[:33] + chunk(tag, payload) + good[33:]


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((0, 0, 0), (255, 255, 255), (128, 0, 0))]
    kw = {"save_all": True, "append_images": frames[1:], "duration": 50, "loop": 0}
    return encoded(frames[0], fmt, **kw)


def tiff(img: Image.Image) -> bytes:
    return encoded(img, "TIFF")


def _mode_files() -> dict[str, bytes]:
    grey, colour = Image.fromarray(ramp()), rgb()
    p = colour.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p.info["transparency"] = 0
    i16 = Image.fromarray(ramp().astype("<u2") * 257)
    f32 = np.linspace(-3, 5, 24 * 24, dtype=np.float32).reshape(24, 24)
    f32[0, :3] = (np.nan, np.inf, -np.inf)  # a float TIFF may hold anything
    return {
        "1 (PNG)": encoded(grey.convert("1")),
        "L (PNG)": encoded(grey),
        "LA (PNG)": encoded(colour.convert("LA")),
        "P + transparency (PNG)": encoded(p, transparency=0),
        "RGB (PNG)": encoded(colour),
        "RGBA (PNG)": encoded(colour.convert("RGBA")),
        "I;16 (PNG)": encoded(i16),
        "RGB 16-bit (PNG)": _png16_rgb(),
        "I;16B (TIFF)": tiff(i16.convert("I").convert("I;16B")),
        "I 32-bit (TIFF)": tiff(Image.fromarray(ramp().astype(np.int32) * 1000)),
        "F with NaN/Inf (TIFF)": tiff(Image.fromarray(f32)),
        "CMYK (TIFF)": tiff(colour.convert("CMYK")),
        "CMYK (JPEG)": encoded(colour.convert("CMYK"), "JPEG"),
        "YCbCr (JPEG)": encoded(colour, "JPEG"),
        "LAB (TIFF)": tiff(colour.convert("LAB")),
        "RGB (WebP)": encoded(colour, "WEBP"),
        "P (GIF)": encoded(p, "GIF"),
        "RGB (BMP)": encoded(colour, "BMP"),
        "1 (BMP)": encoded(grey.convert("1"), "BMP"),
        "RGB (PPM)": encoded(colour, "PPM"),
        "RGBA (TGA)": encoded(colour.convert("RGBA"), "TGA"),
        "RGBA (ICO)": encoded(colour.convert("RGBA"), "ICO"),
        "EXIF-rotated (JPEG)": _exif_rotated(),
    }


def _png16_rgb() -> bytes:
    """A 48-bit RGB PNG written by hand (PIL cannot write one)."""
    h = w = 8
    rows = b"".join(b"\x00" + bytes(range(6)) * w for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    return encoded(rgb(), "JPEG", exif=exif.tobytes())


GOOD_PNG = encoded(Image.fromarray(ramp()))

# name -> (file name, content, what the message says (a regex)); None: accepted
IMAGE_CASES: dict[str, tuple[str, bytes, str | None]] = {
    # not images
    "text file": ("notes.txt", b"these are notes, not pixels\n" * 20, "not a recognised image"),
    "empty file": ("empty.png", b"", "not a recognised image"),
    "SVG": (
        "drawing.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>',
        "not a recognised image",
    ),
    "PDF": (
        "paper.pdf",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
        "not a recognised image",
    ),
    "ZIP": ("archive.png", b"PK\x03\x04" + bytes(200), "not a recognised image"),
    "random bytes": (
        "noise.jpg",
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "not a recognised image",
    ),
    # truncated or corrupt
    "PNG cut in half": ("half.png", GOOD_PNG[: len(GOOD_PNG) // 2], "truncated or corrupt"),
    "PNG header only": ("header.png", GOOD_PNG[:40], "not a recognised|truncated"),
    "JPEG cut short": ("half.jpg", encoded(rgb(), "JPEG")[:300], "[Tt]runcated"),
    "PNG with a broken IDAT": (
        "crc.png",
        (
            lambda b: (
                b[: b.index(b"IDAT") + 4]
                + bytes([b[b.index(b"IDAT") + 4] ^ 0xFF])
                + b[b.index(b"IDAT") + 5 :]
            )
        )(GOOD_PNG),
        "truncated or corrupt",
    ),
    "GIF cut short": ("cut.gif", animated("GIF")[:60], "not a recognised|truncated|could not"),
    # decompression bombs and huge dimensions
    "PNG claiming 8000 x 8000": ("claims.png", png_claiming(8000, 8000), "too large"),
    "PNG claiming 30000 x 30000": ("claims.png", png_claiming(30000, 30000), "too large"),
    "deflate bomb 20000 x 20000": (
        "bomb.png",
        encoded(Image.new("1", (20000, 20000))),
        "too large",
    ),
    "GIF screen 65535 x 65535": (
        "screen.gif",
        (lambda g: g[:6] + struct.pack("<HH", 65535, 65535) + g[10:])(
            encoded(Image.new("P", (4, 4)), "GIF")
        ),
        "too large",
    ),
    "zTXt text bomb": (
        "text.png",
        with_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * (64 << 20), 9)),
        "too large",
    ),
    "iCCP profile bomb": (
        "icc.png",
        with_chunk(b"iCCP", b"p\x00\x00" + zlib.compress(b"a" * (64 << 20), 9)),
        "too large",
    ),
    "1 x 40000 strip": ("strip.png", encoded(Image.new("L", (40000, 1), 200)), None),
    "7000 x 7000 (49 MP)": ("big.png", encoded(Image.new("1", (7000, 7000))), None),
    # animations: the first frame is used
    "animated GIF": ("anim.gif", animated("GIF"), None),
    "animated PNG": ("anim.png", animated("PNG"), None),
    "animated WebP": ("anim.webp", animated("WEBP"), None),
}
MODE_CASES = _mode_files()


# ---------------------------------------------------------------- images: library


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_image_library(case):
    name, raw, expect = IMAGE_CASES[case]
    if expect is None:
        x = load_images([raw], SIZE)
        assert x.shape == (1, 1, SIZE, SIZE) and torch.isfinite(x).all()
        if case.startswith("animated"):  # the first frame is black
            assert float(x.max()) == -1.0, case
        return
    with pytest.raises(ValueError, match=r"files\[1\]") as err:
        load_images([GOOD_PNG, raw], SIZE)
    assert re.search(expect, str(err.value)), str(err.value)


@pytest.mark.parametrize("case", list(MODE_CASES))
def test_every_pil_mode_library(case):
    for channels in (1, 3):
        x = load_images([MODE_CASES[case]], SIZE, channels)
        assert x.shape == (1, channels, SIZE, SIZE) and torch.isfinite(x).all(), case
        assert -1 <= float(x.min()) <= float(x.max()) <= 1
        assert float(x.std()) > 0 or "1 (" in case, f"{case}: decoded to a flat image"


def test_decompression_bomb_is_refused_before_decoding(monkeypatch):
    """A bomb never reaches the decoder: Image.load is not called for it."""
    from PIL import ImageFile

    calls = []
    orig = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: calls.append(1) or orig(self))
    with pytest.raises(ValueError, match="too large"):
        load_images([IMAGE_CASES["PNG claiming 8000 x 8000"][1]], SIZE)
    assert not calls


# ---------------------------------------------------------------- images: pages


@pytest.fixture(scope="module")
def upload_page():
    at = open_app_page("basis", {"basis": "dct", "prior": "data"}, {"size": SIZE, "data": "upload"})
    assert not at.exception, app_errors(at)
    return at


@pytest.fixture(scope="module")
def noising_page():
    at = open_app_page("noising", {"t": 0.4}, {"size": SIZE})
    assert not at.exception, app_errors(at)
    return at


def uploader(at, key: str):
    return next(w for w in at.file_uploader if w.key == key)


def errors(at) -> str:
    return " | ".join(e.value for e in at.error)


def _upload_and_check(at, key: str, name: str, raw: bytes, expect: str | None, intro: str):
    kind = "image/png" if name.endswith(".png") else "application/octet-stream"
    uploader(at, key).set_value([(name, raw, kind)] if key == "data_upload" else (name, raw, kind))
    at.run()
    assert not at.exception, app_errors(at)
    assert not any("Traceback" in e.value for e in at.error)
    if expect is None:
        assert not at.error, errors(at)
        assert len(at.get("plotly_chart")) >= 3
    else:
        msg = errors(at)
        assert intro in msg and name in msg, msg
        assert re.search(expect, msg), msg


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_image_as_dataset(upload_page, case):
    name, raw, expect = IMAGE_CASES[case]
    _upload_and_check(
        upload_page, "data_upload", name, raw, expect, "Could not use the uploaded images"
    )
    assert upload_page.session_state["basis"] == "dct"  # nothing else changed


@pytest.mark.parametrize("case", list(MODE_CASES))
def test_every_pil_mode_as_dataset(upload_page, case):
    # two files, so PCA / the data prior have enough images
    uploader(upload_page, "data_upload").set_value(
        [(f"a-{case}", MODE_CASES[case], "image/png"), ("b.png", GOOD_PNG, "image/png")]
    )
    upload_page.run()
    assert not upload_page.exception, app_errors(upload_page)
    assert not upload_page.error, errors(upload_page)


@pytest.mark.parametrize("case", [c for c in IMAGE_CASES if IMAGE_CASES[c][2]][:8])
def test_image_as_own_image_on_forward_noising(noising_page, case):
    name, raw, expect = IMAGE_CASES[case]
    _upload_and_check(noising_page, "noise_upload", name, raw, expect, f"Could not use **{name}")
    assert noising_page.session_state["t"] == 0.4


# ---------------------------------------------------------------- schedule files

SCHEDULE_CASES: dict[str, tuple[bytes, str | None]] = {
    "empty file": (b"", "not valid JSON"),
    "not JSON": (b"{family: soft", "not valid JSON"),
    "binary": (bytes(range(256)), "not text"),
    "JSON number": (b"42", "must be an object"),
    "JSON list": (b"[1, 2, 3]", "must be an object"),
    "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "object nested 50000 deep": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    "over 5 MB": (b'{"family": "linear", "pad": "' + b"x" * 5_100_000 + b'"}', "at most 5 MB"),
    "empty settings": (b'{"settings": {}}', "non-empty"),
    "settings not an object": (b'{"settings": [1]}', "non-empty object"),
    "unknown setting": (json.dumps({"settings": {"colour": "red"}}).encode(), "unknown setting"),
    "setting of the wrong type": (json.dumps({"settings": {"gd": {"x": 1}}}).encode(), "gd must"),
    "setting out of range": (json.dumps({"settings": {"gd": -99}}).encode(), "gd must"),
    "softness not on the grid": (json.dumps({"settings": {"soft": 0.123}}).encode(), "soft must"),
    "NaN gamma": (b'{"family": "linear", "gamma_min": NaN}', "gamma_min"),
    "Infinity labels": (b'{"family": "soft", "labels": [1, Infinity], "softness": 1}', "labels"),
    "string softness": (
        json.dumps({"schedule": {"family": "soft", "labels": [0, 1], "softness": "abc"}}).encode(),
        "softness",
    ),
    "ragged labels": (
        json.dumps({"family": "soft", "labels": [[1, 2], [3]], "softness": 1}).encode(),
        "schedule",
    ),
    "labels of text": (
        json.dumps({"family": "soft", "labels": ["a"], "softness": 1}).encode(),
        "schedule",
    ),
    "extra field": (json.dumps({"family": "linear", "colour": 3}).encode(), "wrong fields"),
    "no family": (json.dumps({"schedule": {"gamma_min": 1}}).encode(), "family"),
    "wrong size": (
        json.dumps({"family": "soft", "labels": list(range(9)), "softness": 1.0}).encode(),
        "has 9 components",
    ),
    "byte-order mark": (
        b"\xef\xbb\xbf"
        + json.dumps({"family": "linear", "gamma_min": -5, "gamma_max": 5}).encode(),
        None,
    ),
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_schedule_file(case):
    raw, expect = SCHEDULE_CASES[case]
    if expect is not None and case != "wrong size":
        with pytest.raises(ValueError, match=expect):
            files.parse_schedule_file(raw)


@pytest.fixture(scope="module")
def schedule_page():
    at = open_app_page("schedule", {"soft": 0.2, "clip": True}, {"size": SIZE})
    assert not at.exception, app_errors(at)
    return at


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
def test_schedule_file_on_the_page(schedule_page, case):
    at = schedule_page
    raw, expect = SCHEDULE_CASES[case]
    uploader(at, "sched_file").set_value(("schedule.json", raw, "application/json"))
    at.run()
    assert not at.exception, (case, app_errors(at))
    if expect is None:
        assert not at.error, errors(at)
        assert any("Showing the schedule from" in i.value for i in at.info)
    else:
        assert expect in errors(at), (case, errors(at))
    assert at.session_state["soft"] == 0.2 and at.session_state["clip"] is True
    assert len(at.get("plotly_chart")) >= 4  # the page still shows its schedule
    uploader(at, "sched_file").set_value(None)
    at.run()


# ---------------------------------------------------------------- sampling settings files


@pytest.fixture
def sampling_page():
    at = open_app_page("sampling", {"steps": 20, "batch": 4}, {"size": SIZE})
    assert not at.exception, app_errors(at)
    return at


@pytest.mark.parametrize(
    "case, raw",
    [
        ("not JSON", b"{nope"),
        ("binary", bytes(range(256))),
        ("wrong format", b'{"format": "other", "settings": {}}'),
        (
            "bad value",
            json.dumps({"format": "rgdiff-sampling", "settings": {"steps": "many"}}).encode(),
        ),
        ("nested 100000 deep", b"[" * 100_000 + b"]" * 100_000),
    ],
)
def test_sampling_settings_file(sampling_page, case, raw):
    """Deeply nested JSON (json raises RecursionError) is refused with a message, as in
    ui/files.parse_schedule_file."""
    at = sampling_page
    uploader(at, "settings_file").set_value(("run.json", raw, "application/json"))
    at.run()
    assert not at.exception, (case, app_errors(at))
    assert "Could not load" in errors(at), errors(at)
    assert at.session_state["steps"] == 20


# ---------------------------------------------------------------- checkpoints


class Evil:
    """Unpickling this writes a file: what a hostile checkpoint would do."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class Shell:
    def __init__(self, target: Path):
        self.cmd = f"touch {target}"

    def __reduce__(self):
        return (os.system, (self.cmd,))


def _tiny_checkpoint(path: Path, poison: bool = False) -> dict:
    """A small real checkpoint (16 x 16 digits, DCT, data prior) written by save_checkpoint."""
    from rgdiff_core.bases import make_basis
    from rgdiff_core.data import load_dataset
    from rgdiff_core.denoisers.checkpoints import save_checkpoint
    from rgdiff_core.denoisers.models import UNetConfig
    from rgdiff_core.denoisers.network import NetworkDenoiser
    from rgdiff_core.priors import make_prior
    from rgdiff_core.process import Process
    from rgdiff_core.schedules import order_labels, soft_conditioning_schedule

    data = load_dataset("digits", SIZE)
    basis = make_basis("dct", (1, SIZE, SIZE))
    prior = make_prior("data", basis, data=data)
    lam = basis.encode(data).var(0).double().clamp_min(1e-6)
    v = lam / prior.std.double() ** 2
    labels = order_labels("variance", basis, variances=lam)
    process = Process(basis, prior, soft_conditioning_schedule(labels, 1.0, variances=v))
    torch.manual_seed(0)
    den = NetworkDenoiser(
        process, UNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, cond_dim=16)
    )
    state = den.model.state_dict()
    if poison:
        state = {
            k: torch.full_like(t, float("nan")) if t.is_floating_point() else t
            for k, t in state.items()
        }
    return save_checkpoint(
        path,
        den,
        dataset="digits",
        order="variance",
        labels=labels,
        data_variances=v,
        gamma_denoise=-7.0,
        gamma_noise=3.0,
        clip=False,
        softness_family={"kind": "fixed"},
        state_dict=state,
    )


def _write_case(case: str, path: Path, target: Path) -> None:
    if case == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif case == "empty file":
        path.write_bytes(b"")
    elif case == "truncated checkpoint":
        _tiny_checkpoint(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "legacy pickle that writes a file":
        path.write_bytes(pickle.dumps({"format": "rgdiff-network", "x": Evil(target)}, 2))
    elif case == "zip pickle that writes a file":
        torch.save({"format": "rgdiff-network", "version": 1, "x": Evil(target)}, path)
    elif case == "pickle that runs a shell command":
        torch.save({"format": "rgdiff-network", "x": Shell(target)}, path)
    elif case == "a whole nn.Module":
        torch.save(torch.nn.Linear(2, 2), path)
    elif case == "foreign dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif case == "future version":
        torch.save({"format": "rgdiff-network", "version": 99}, path)
    elif case == "missing keys":
        torch.save({"format": "rgdiff-network", "version": 1, "dim": 256}, path)
    elif case == "weights that do not fit":
        ckpt = _tiny_checkpoint(path)
        ckpt["state_dict"] = {k: v[..., :1] for k, v in ckpt["state_dict"].items()}
        torch.save(ckpt, path)
    elif case == "a folder":
        path.mkdir()
    elif case == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        raise AssertionError(case)


CHECKPOINT_CASES = {
    "random bytes": "not a valid rgdiff checkpoint",
    "empty file": "not a valid rgdiff checkpoint",
    "truncated checkpoint": "not a valid rgdiff checkpoint",
    "legacy pickle that writes a file": "not a valid rgdiff checkpoint",
    "zip pickle that writes a file": "not a valid rgdiff checkpoint",
    "pickle that runs a shell command": "not a valid rgdiff checkpoint",
    "a whole nn.Module": "not a valid rgdiff checkpoint",
    "foreign dict": "not in the 'rgdiff-network' format",
    "future version": "format version 99",
    "missing keys": "lacks",
    "weights that do not fit": "weights do not fit",
    "a folder": "not found",
    "symlink to /dev/zero": "not found",
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoint_library(case, tmp_path):
    path, target = tmp_path / "model.pt", tmp_path / "pwned"
    _write_case(case, path, target)
    with pytest.raises(ValueError, match=CHECKPOINT_CASES[case]):
        load_network_denoiser(path)
    if case != "weights that do not fit":  # a well-formed file: only the model refuses it
        with pytest.raises(ValueError):
            load_checkpoint(path)
    assert not target.exists(), "a pickle in the file was executed"


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoint_on_the_sampling_page(case, models_dir, tmp_path):
    """The file is offered as a denoiser (it sits in the models folder); choosing it shows an
    error naming the file, the page keeps working, and no pickle in it runs."""
    name = "case-" + "".join(c if c.isalnum() else "_" for c in case) + ".pt"
    target = tmp_path / "pwned"
    _write_case(case, models_dir / name, target)
    at = open_app_page(
        "sampling", {"den": f"network:{name}", "steps": 10, "batch": 2}, {"size": SIZE}
    )
    assert not at.exception, app_errors(at)
    assert CHECKPOINT_CASES[case].split(":")[0] in errors(at), errors(at)
    assert not target.exists(), "a pickle in the file was executed"
    at.selectbox(key="den").set_value("empirical").run()  # another denoiser still works
    assert not at.exception and not at.error, (app_errors(at), errors(at))


def test_poisoned_weights_stop_the_run_with_a_message(models_dir, navigation_mode):
    """A well-formed checkpoint whose weights are NaN: the run stops at the first step with
    a message instead of showing NaN images, and the page keeps working."""
    _tiny_checkpoint(models_dir / "poisoned.pt", poison=True)
    at = open_app_page(
        "sampling",
        {"den": "network:poisoned.pt", "steps": 10, "batch": 2, "basis": "dct", "prior": "data"},
        {"size": SIZE},
    )
    at.button(key="run_button").click().run()
    assert not at.exception, app_errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "diverged" in warnings, warnings
    run = list(at.session_state["_rgdiff_runs"].values())[-1]
    assert run.cancelled and torch.isfinite(run.samples).all()
