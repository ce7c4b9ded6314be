"""The lecture view: diffusion and autoregressive generation side by side from the same noise,
large enough to read from the back of a lecture room.

Two or three softness values (default ∞, 1, 0.1) run as one softness sweep (ui/runs.py,
through the server's run queue): the same seed, so the same terminal noise in whitened
components, the same basis and prior, the exact Gaussian denoiser fitted to the data and the
probability-flow ODE (dpm2m), so each picture is a deterministic function of that one noise.
The recorded x_t (or x̂₀) frames play in one HTML player, every panel on the same frame:
a big t readout and, per panel, the component groups already committed at t (true SNR > 1,
rgdiff_core.experiments.committed_groups, as on the Sampling page). Exports: the animation as
GIF and a film strip of six times as PNG, both at least 512 px wide.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import streamlit as st

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.specs import DataSpec, ProcessSpec
from ui import cache, denoiser_choice, runs, state, timing, widgets

BIND: Any = "query-params"
DENOISER = "gaussian_fit"  # exact, no training, fast: the lecture needs no checkpoint
SAMPLER = "dpm2m"  # deterministic: every panel is a function of the same initial noise
# What each preset sets (process keys of ui/state.py); the clip makes the small-s end truly
# autoregressive (docs/maths.md §2, the three limits). The white prior makes x_t at t = 1
# plain white noise in pixels, so "the same noise" is what the class sees first.
PRESETS: dict[str, dict[str, Any]] = {
    "pixels, column by column": {"basis": "pixel", "order": "column"},
    "wavelets, coarse to fine": {"basis": "wavelet", "order": "scale"},
    "DCT, low to high frequency": {"basis": "dct", "order": "scale"},
    "PCA, by variance": {"basis": "pca", "order": "variance"},
}
SOFTNESS_DEFAULT = ("inf", "1", "0.1")
WIDTHS = (128, 192, 256, 320, 384, 448, 512)  # on-screen image width, px
SPEEDS = (2, 4, 6, 8, 12, 16, 24)  # frames per second
SIZES = (16, 32)
EXPORT_MIN_PX = 512
STRIP_TIMES = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)


@dataclass(frozen=True)
class Settings:
    preset: str
    softnesses: tuple[float, ...]
    size: int
    samples: int
    steps: int | None  # None: the schedules' own stability bound ("auto")


def compact_top() -> None:
    """Less empty space above the title on this page, so the player fits a 1280 x 720
    projector image under the controls."""
    st.html(
        '<style>[data-testid="stMainBlockContainer"]{padding-top:2.5rem}</style>',
    )


def role(s: float) -> str:
    """What a softness is called on screen (docs/maths.md §2)."""
    if math.isinf(s):
        return "diffusion"
    return "soft order" if s > 0.3 else "autoregressive"


def softness_text(s: float, infinity: str = "∞") -> str:
    return "s = " + (infinity if math.isinf(s) else f"{s:g}")


def softness_title(s: float, infinity: str = "∞") -> str:
    return f"{softness_text(s, infinity)} · {role(s)}"


# ---------------------------------------------------------------- controls


def settings_controls() -> Settings:
    """The lecture's settings (in a collapsed expander on the page)."""
    c1, c2 = st.columns(2)
    preset = c1.selectbox(
        "What generates in which order",
        tuple(PRESETS),
        key="lec_preset",
        bind=BIND,
        help="Basis and order of the soft-conditioning schedule (white prior, clip on). "
        "Column by column in pixels is the classic autoregressive picture; coarse to fine in "
        "wavelets is the renormalisation-group one (best seen with Show x̂₀).",
    )
    chosen = c2.multiselect(
        "Softness values (2 or 3)",
        state.SOFT_TEXT,
        default=list(SOFTNESS_DEFAULT),
        key="lec_soft",
        bind=BIND,
        help="; ".join(state.SOFTNESS_STORY) + ". Shown from diffusion (left) to "
        "autoregressive (right), all from the same noise.",
    )
    c3, c4, c5 = st.columns(3)
    size = c3.selectbox(
        "Image size (this view)",
        SIZES,
        key="lec_size",
        bind=BIND,
        help="The lecture view's own image size: 16 runs in about a second. The digits are "
        "8 × 8 drawings scaled up, so 16 shows all their detail.",
    )
    samples = c4.selectbox(
        "Images per panel",
        (1, 4),
        key="lec_n",
        bind=BIND,
        help="1: one large image per softness; 4: a 2 × 2 grid, each from its own noise.",
    )
    steps = c5.number_input(
        "Steps (0 = auto)",
        0,
        1000,
        value=0,
        step=10,
        key="lec_steps",
        bind=BIND,
        help="Sampler steps per run; 0 takes the most the chosen schedules need to stay "
        "stable (at least 40, so playback is smooth).",
    )
    values = tuple(sorted((state.parse_setting("soft", v) for v in chosen), reverse=True))
    return Settings(preset, values, int(size), int(samples), int(steps) or None)


def view_controls() -> tuple[str, int, int]:
    """(what to show, image width on screen in px, frames per second): change freely after a
    run, nothing resamples."""
    c1, c2, c3 = st.columns([1.2, 2, 2])
    show = c1.segmented_control(
        "Show",
        ("x_t", "x̂₀"),
        default="x_t",
        key="lec_show",
        required=True,
        bind=BIND,
        help="x_t: the state being generated (noise at t = 1, the image at t = 0); x̂₀: the "
        "denoiser's estimate of the final image at time t.",
    )
    width = c2.select_slider(
        "Zoom: image width on screen",
        WIDTHS,
        value=256,
        key="lec_width",
        format_func=lambda w: f"{w} px",
        bind=BIND,
        help="Each panel's width; the pixels are enlarged nearest-neighbour (no blur).",
    )
    fps = c3.select_slider(
        "Speed",
        SPEEDS,
        value=8,
        key="lec_fps",
        format_func=lambda f: f"{f} frames/s",
        bind=BIND,
        help="Playback speed of the synchronised player (it pauses 1.5 s at t = 0).",
    )
    return show or "x_t", int(width), int(fps)


# ---------------------------------------------------------------- the run


def lecture_specs(s: Settings, data: DataSpec) -> list[ProcessSpec]:
    """One ProcessSpec per softness (the preset's basis and order, white prior, clip)."""
    d = replace(data, size=s.size)
    settings = {**PRESETS[s.preset], "prior": "white", "family": "soft", "clip": True}
    settings["gnauto"] = True
    base = state.process_spec(settings, d)
    return [replace(base, schedule=replace(base.schedule, softness=v)) for v in s.softnesses]


def auto_steps(specs: list[ProcessSpec]) -> int:
    """The most steps any of the schedules needs to stay stable, at least 40, at most 1000."""
    need = max(int(cache.schedule_stiffness(p)["steps_needed"]) for p in specs)
    return min(1000, max(40, need))


def check(s: Settings, data: DataSpec) -> str | None:
    if not 2 <= len(s.softnesses) <= 3:
        return (
            f"Pick two or three softness values to compare (now {len(s.softnesses)}), for "
            "example inf, 1 and 0.1: more do not fit side by side at lecture size."
        )
    if data.dataset == "upload" and not data.upload:
        return "Upload images in the sidebar first (the dataset is 'upload')."
    return widgets.check_process(lecture_specs(s, data)[0])


def run_spec(s: Settings, data: DataSpec) -> runs.RunSpec:
    specs = lecture_specs(s, data)
    steps = s.steps or auto_steps(specs)
    return runs.RunSpec(specs[0], DENOISER, SAMPLER, steps, s.samples)


def start(key, spec: runs.RunSpec, softnesses: tuple[float, ...]) -> None:
    """Run the softness values as one sweep (same seed, same noise), stored under key."""
    process = denoiser_choice.process_for(spec.process, DENOISER)
    den = denoiser_choice.denoiser(spec.process, DENOISER)
    est = timing.estimate(spec, process, den, runs=len(softnesses))
    if not est.ok:
        st.error(est.problem)
        st.stop()
    runs.execute_sweep(key, spec, softnesses, est.limit, est.seconds)


# ---------------------------------------------------------------- frames and groups


@st.cache_resource(max_entries=16, show_spinner=False)
def committed_frames(
    spec: runs.RunSpec, s: float, times: tuple[float, ...]
) -> tuple[list, np.ndarray]:
    """(group names, (F, G) bool: committed at each frame's t) for softness s."""
    p = spec.with_softness(s).process
    info = cache.schedule(p.data, p.basis, p.prior, p.schedule)
    groups, how = widgets.display_groups(cache.basis(p.data, p.basis), info, p.schedule, "auto")
    if how == "order groups":  # one group per label where there are few (a pixel column)
        distinct = len(np.unique(info.order_labels))
        groups = viz.order_groups(info.order_labels, min(32, distinct))
    process = denoiser_choice.process_for(p, DENOISER)
    done = np.array([ex.committed_groups(process, info.v, float(t), groups) for t in times])
    return [n for n, _ in groups], done.reshape(len(times), len(groups))


def panel_images(run: ex.SamplingRun, show: str, n_frames: int, zoom: int) -> list[np.ndarray]:
    """uint8 grey images, one per frame: the recorded x_t or x̂₀, 1 or a 2 x 2 grid,
    enlarged `zoom` times nearest-neighbour."""
    traj = run.trajectory
    x = traj.x_t if show == "x_t" else traj.x0_hat
    ncols = 1 if x.shape[1] == 1 else 2
    return [
        viz.upscale(viz.to_uint8(viz.image_grid(x[i].clamp(-1, 1), ncols=ncols, pad=0)), zoom)
        for i in range(n_frames)
    ]


def zoom_for(width: int, size: int, samples: int) -> int:
    """The integer enlargement that makes a panel at least `width` px wide."""
    across = size * (1 if samples == 1 else 2)
    return max(1, math.ceil(width / across))


def _png64(img: np.ndarray) -> str:
    return base64.b64encode(viz.encode_png(img)).decode("ascii")


# ---------------------------------------------------------------- the player


def player(result: list, spec: runs.RunSpec, show: str, width: int, fps: int) -> None:
    """Every softness side by side, one synchronised autoplaying player (HTML): the big t
    readout, and per panel its image and committed groups."""
    n = min(len(r.trajectory) for r in result)
    if n == 0:
        st.info("No step finished, so there is nothing to play.")
        return
    times = tuple(float(t) for t in result[0].trajectory.t[:n])
    # the browser enlarges the small PNGs nearest-neighbour (image-rendering: pixelated) by
    # an integer factor, so every image pixel is a square of zoom x zoom screen pixels
    zoom = zoom_for(width, spec.process.data.size, spec.batch)
    panels = []
    for r in result:
        s = r.meta["softness"]
        names, done = committed_frames(spec, s, times)
        frames = panel_images(r, show, n, 1)
        panels.append(
            {
                "title": softness_text(s),
                "role": role(s),
                "frames": [_png64(f) for f in frames],
                "committed": done.astype(int).tolist(),
                "groups": names,
            }
        )
    size = int(frames[0].shape[1]) * zoom  # every panel image is size x size px on screen
    data = {"t": list(times), "fps": fps, "hold_ms": 1500, "panels": panels}
    st.iframe(_html(data, size, show), height="content")


def _html(data: dict, size: int, show: str) -> str:
    groups = max(len(p["groups"]) for p in data["panels"])
    chip = min(18, max(6, (size - 3 * (groups - 1)) // groups - 2))  # one row when it fits
    heads = "".join(
        f'<div class="panel" style="width:{size}px"><div class="head">{p["title"]} '
        f'<span class="role">{p["role"]}</span></div>'
        f'<img class="im" width="{size}" height="{size}" alt="{show}">'
        f'<div class="count">committed <b>0</b>/{len(p["groups"])} groups</div>'
        '<div class="chips">'
        + "".join(
            f'<span class="chip" title="{g}" style="width:{chip}px;height:{chip}px"></span>'
            for g in p["groups"]
        )
        + "</div></div>"
        for p in data["panels"]
    )
    return (
        PLAYER_HTML.replace("__PANELS__", heads)
        .replace("__DATA__", json.dumps(data).replace("</", "<\\/"))
        .replace("__WHAT__", WHAT[show])
    )


WHAT = {
    "x_t": "x_t: noise at t = 1 &#10230; data at t = 0",
    "x̂₀": "x̂₀: the denoiser's estimate of the end image",
}


PLAYER_HTML = """<!doctype html><html><head><meta charset="utf-8"><style>
body{margin:0;font-family:"Source Sans Pro","Source Sans 3",Arial,sans-serif;color:#222}
.bar{display:flex;align-items:center;gap:18px;margin:0 0 8px 0}
#t{font-size:52px;font-weight:700;font-variant-numeric:tabular-nums;min-width:230px}
.what{font-size:20px;color:#555;white-space:nowrap}
button{font-size:20px;padding:4px 16px;border-radius:8px;border:1px solid #2b5f8c;
 background:#fff;color:#2b5f8c;cursor:pointer}
input[type=range]{width:180px}
.panels{display:flex;gap:18px;overflow-x:auto}
.panel{flex:none}
.head{font-size:28px;font-weight:700;margin:0 0 4px 0;white-space:nowrap}
.role{font-size:20px;font-weight:400;color:#2b5f8c}
.im{display:block;image-rendering:pixelated;border:1px solid #2b5f8c}
.count{font-size:22px;margin:2px 0 2px 0;white-space:nowrap}
.chips{display:flex;flex-wrap:wrap;gap:3px}
.chip{border-radius:3px;background:#e6e6e6;border:1px solid #bbb}
.chip.on{background:#2e8b57;border-color:#1d5c39}
</style></head><body>
<div class="bar"><span id="t">t = 1.00</span><button id="play">Pause</button>
<input id="frame" type="range" min="0" value="0"><span class="what">__WHAT__</span></div>
<div class="panels">__PANELS__</div>
<script id="data" type="application/json">__DATA__</script>
<script>
const D = JSON.parse(document.getElementById("data").textContent);
const n = D.t.length, imgs = document.querySelectorAll(".im");
const counts = document.querySelectorAll(".count b"), panels = document.querySelectorAll(".panel");
const slider = document.getElementById("frame"), btn = document.getElementById("play");
let i = 0, playing = true;
slider.max = n - 1;
function show(k) {
  i = k; slider.value = k;
  document.getElementById("t").textContent = "t = " + D.t[k].toFixed(2);
  document.body.dataset.frame = k;
  D.panels.forEach((p, j) => {
    imgs[j].src = "data:image/png;base64," + p.frames[k];
    const c = p.committed[k];
    counts[j].textContent = c.reduce((a, b) => a + b, 0);
    panels[j].querySelectorAll(".chip").forEach((el, g) => el.classList.toggle("on", !!c[g]));
  });
}
function tick() {
  if (playing) show(i + 1 < n ? i + 1 : 0);
  setTimeout(tick, i === n - 1 ? D.hold_ms : 1000 / D.fps);
}
btn.onclick = () => { playing = !playing; btn.textContent = playing ? "Pause" : "Play"; };
slider.oninput = () => { playing = false; btn.textContent = "Play"; show(+slider.value); };
show(0); setTimeout(tick, 1000 / D.fps);
</script></body></html>"""


# ---------------------------------------------------------------- exports


def _frames(result: list) -> int:
    return min(len(r.trajectory) for r in result)


def gif_bytes(result: list, spec: runs.RunSpec, show: str, fps: int) -> bytes:
    """The playback as a GIF: every panel side by side under its softness, t above; each
    panel at least 256 px and the whole at least EXPORT_MIN_PX wide."""
    n, size, k = _frames(result), spec.process.data.size, spec.batch
    zoom = max(zoom_for(256, size, k), math.ceil(EXPORT_MIN_PX / (len(result) * size)))
    titles = [softness_title(r.meta["softness"], "inf") for r in result]
    times = result[0].trajectory.t[:n]
    frames = [panel_images(r, show, n, zoom) for r in result]
    table = [
        viz.image_table([[f[i] for f in frames]], titles, title=f"t = {times[i]:.2f}")
        for i in range(n)
    ]
    # grey frames: no colour quantisation per frame (10x faster, the same picture)
    return viz.encode_gif([t[..., 0] for t in table], duration_ms=int(1000 / fps))


def png_bytes(result: list, spec: runs.RunSpec, show: str) -> bytes:
    """A film strip for slides: one row per softness, the frames nearest STRIP_TIMES."""
    n, size, k = _frames(result), spec.process.data.size, spec.batch
    times = result[0].trajectory.t[:n]
    picks = [int(np.abs(times - t).argmin()) for t in STRIP_TIMES]
    zoom = max(1, math.ceil(128 / (size * (1 if k == 1 else 2))))
    frames = [panel_images(r, show, n, zoom) for r in result]
    name = "x_t" if show == "x_t" else "x0_hat"  # what Pillow's built-in font can draw
    strip = viz.image_table(
        [[f[i] for i in picks] for f in frames],
        [f"t = {times[i]:.2f}" for i in picks],
        [softness_title(r.meta["softness"], "inf") for r in result],
        title=f"{name}: one noise at t = 1 generated to t = 0 ({spec.process.basis.label()})",
    )
    return viz.encode_png(strip)


def exports(result: list, spec: runs.RunSpec, show: str, fps: int) -> None:
    """GIF and PNG download buttons; the files are made when a button is pressed."""
    if _frames(result) == 0:
        return
    c1, c2, _ = st.columns([1, 1, 2])
    c1.download_button(
        "Download GIF",
        lambda: gif_bytes(result, spec, show, fps),
        "rgdiff_lecture.gif",
        "image/gif",
        key="lec_gif",
        help="The playback, every panel side by side with its softness and t.",
    )
    c2.download_button(
        "Download PNG",
        lambda: png_bytes(result, spec, show),
        "rgdiff_lecture.png",
        "image/png",
        key="lec_png",
        help="A film strip for slides: one row per softness, six times from t = 1 to 0.",
    )
