"""Widget keys, their defaults and options, URL encoding, and the home page's presets.

Every control has a key, and every key is also its URL query parameter (bind="query-params"),
so a view is `/<page>?key=value&...`. A preset is a plain dict of keys -> values; its link is
the page URL with those values encoded exactly as Streamlit writes them (`query_value`).
Keys of the process pickers take a prefix: "" for the main process, "b_" for the A/B process.
The options of the library's choices come from its registries, in their registration order
(the order the pickers show), so a name is typed once.
"""

from __future__ import annotations

import math
from typing import Any

from rgdiff_core import bases, data, priors, schedules
from rgdiff_core.experiments import SWEEP_SOFTNESS
from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, ScheduleSpec

# ---------------------------------------------------------------- options

DATASETS = (*data.DATASETS, "upload")
SIZES = (16, 32, 64)
DEVICES = ("auto", "cpu", "cuda")
BASES = tuple(bases.BASES)
WAVELETS = ("haar", "db2", "db4", "sym4", "coif1")
LEVELS = ("max", "1", "2", "3", "4", "5", "6")
PRIORS = tuple(k for k in priors.PRIORS if k != "explicit")  # explicit: a library-only prior
FAMILIES = tuple(schedules.SCHEDULES)
ORDERS = schedules.ORDERS
# Softness on a log grid, left = diffusion (equal-SNR at infinity), right = autoregressive.
SOFTNESS = (
    math.inf,
    100.0,
    70.0,
    50.0,
    30.0,
    20.0,
    15.0,
    10.0,
    7.0,
    5.0,
    3.0,
    2.0,
    1.5,
    1.0,
    0.7,
    0.5,
    0.3,
    0.2,
    0.15,
    0.1,
    0.07,
    0.05,
    0.03,
    0.02,
    0.015,
    0.01,
)
SEED_MAX = 2**31 - 1
# (min, max, step) of the numeric process controls.
RANGES: dict[str, tuple[float, float, float]] = {
    "exponent": (0.0, 6.0, 0.5),
    "gmin": (-20.0, 0.0, 0.5),
    "gmax": (0.0, 20.0, 0.5),  # scalar schedules
    "bmin": (0.0, 5.0, 0.05),
    "bmax": (1.0, 50.0, 0.5),  # VP: beta(t) from bmin to bmax
    "gd": (-15.0, 0.0, 0.5),
    "gn": (0.0, 30.0, 0.5),  # soft-conditioning targets (gn: when not auto)
}
CHOICES: dict[str, tuple] = {
    "basis": BASES,
    "wavelet": WAVELETS,
    "levels": LEVELS,
    "prior": PRIORS,
    "family": FAMILIES,
    "order": ORDERS,
}
PROCESS_KEYS = (
    "basis",
    "wavelet",
    "levels",
    "prior",
    "exponent",
    "family",
    "gmin",
    "gmax",
    "bmin",
    "bmax",
    "order",
    "soft",
    "gd",
    "gn",
    "gnauto",
    "clip",
)


def format_softness(s: float) -> str:
    return "inf" if math.isinf(s) else f"{s:g}"


# What the softness means (docs/maths.md §2, "The three limits"): the Home page and the
# slider's help tell the same story from these lines.
SOFTNESS_STORY = (
    "s = ∞: every component has the same SNR at every time, so all are generated together "
    "(the diffusion end)",
    "s = 1: a soft order; with the variance order these are exactly the SNR paths of standard "
    "diffusion, where high-variance components emerge before low-variance ones",
    "s → 0 (with the clip): autoregressive, one group of components after another in the "
    "basis's order, each conditioned on those before",
)

SOFT_TEXT = tuple(format_softness(s) for s in SOFTNESS)  # the sweep's options, as shown
SWEEP_DEFAULT = tuple(format_softness(s) for s in SWEEP_SOFTNESS)
SAMPLING_MODES = ("single", "sweep")


# ---------------------------------------------------------------- defaults

SIDEBAR_DEFAULTS: dict[str, Any] = {"data": "glyphs", "size": 32, "device": "auto", "seed": 0}

PROCESS_DEFAULTS: dict[str, Any] = {
    "basis": "wavelet",
    "wavelet": "haar",
    "levels": "max",
    "prior": "white",
    "exponent": 2.0,
    "family": "soft",
    "gmin": -10.0,
    "gmax": 10.0,
    "bmin": 0.1,
    "bmax": 20.0,
    "order": "variance",
    "soft": 1.0,
    "gd": schedules.GAMMA_DENOISE,
    "gn": schedules.GAMMA_NOISE,
    "gnauto": True,  # γ̃_n from the prior term: L_T <= 0.1 nat (rgdiff_core.terminal)
    "clip": False,
}

# The A/B process of Forward noising starts as a coarse-to-fine wavelet cascade.
B_DEFAULTS: dict[str, Any] = {
    **PROCESS_DEFAULTS,
    "prior": "data",
    "order": "scale",
    "soft": 0.1,
    "clip": True,
}

GROUPINGS = ("auto", "basis", "order")

PAGE_DEFAULTS: dict[str, Any] = {
    "groups": "auto",  # components grouped by the basis's groups or by generation order
    "img": 0,  # data item shown
    "bf": 0,  # first basis function shown
    "indiv": False,  # schedule curves per component instead of group means
    "ga": 0,
    "gb": -1,  # two groups for the log-SNR plane (index; -1 = last)
    "t": 0.5,
    "play": False,
    "ab": False,
    "k0": 2.0,  # Conditioning: known frequencies |k| <= k0
    "extra": 8,  # Conditioning: columns added by the extension
}

# Run controls of the Sampling, Compare and Conditioning pages (B of Compare shares them).
RUN_DEFAULTS: dict[str, Any] = {
    "den": "empirical",
    "cden": "gaussian_fit",  # conditioning (the empirical one returns one training item)
    "items": 6000,  # exact empirical: the first N training items (all 60 000 glyphs: 10x)
    "sampler": "dpm2m",  # fewest denoiser calls for 2 % (bench/results/accuracy.md, table 3)
    "steps": 100,
    "batch": 16,
    "mode": "single",
    "tlimit": None,  # seconds; None: automatic, from the run's estimate (ui/timing.py)
    "sweep": list(SWEEP_DEFAULT),
    "cn": 8,  # conditioning: samples
}


def default(key: str) -> Any:
    """Default value of a widget key (process and run keys may carry the "b_" prefix)."""
    if key.startswith("b_"):
        name = key[2:]
        return B_DEFAULTS[name] if name in B_DEFAULTS else RUN_DEFAULTS[name]
    for table in (SIDEBAR_DEFAULTS, PROCESS_DEFAULTS, PAGE_DEFAULTS, RUN_DEFAULTS):
        if key in table:
            return table[key]
    raise KeyError(f"unknown widget key {key!r}")


def query_value(value: Any) -> str:
    """A value as Streamlit writes it into the URL for a bound widget."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format_softness(value) if math.isinf(value) else f"{value:g}"
    return str(value)


def parse_setting(key: str, value: Any) -> Any:
    """A process setting (unprefixed key) from a file or URL value -> the widget's value;
    ValueError saying what is wrong."""
    if key in CHOICES:
        if str(value) not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}, got {value!r}")
        return str(value)
    if key in ("clip", "gnauto"):
        if isinstance(value, bool) or str(value).lower() in ("true", "false"):
            return value if isinstance(value, bool) else str(value).lower() == "true"
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if key == "soft":
        by_text = {format_softness(s): s for s in SOFTNESS}
        text = (
            value
            if isinstance(value, str)
            else format_softness(float(value))
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else None
        )
        if text not in by_text:
            raise ValueError(f"soft must be one of {', '.join(by_text)}, got {value!r}")
        return by_text[text]
    if key in RANGES:
        lo, hi, _ = RANGES[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number in [{lo:g}, {hi:g}], got {value!r}") from None
        if isinstance(value, bool) or not lo <= number <= hi:
            raise ValueError(f"{key} must be a number in [{lo:g}, {hi:g}], got {value!r}")
        return number
    raise ValueError(f"unknown setting {key!r}; known: {', '.join(PROCESS_KEYS)}")


def with_gamma_noise_mode(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings from a file: one written before γ̃_n auto existed names gn without gnauto, and
    that gn is what it meant (so it reloads to the same samples)."""
    if "gn" in settings and "gnauto" not in settings:
        return {**settings, "gnauto": False}
    return settings


def process_spec(settings: dict[str, Any], data_spec: DataSpec, labels: str = "") -> ProcessSpec:
    """The ProcessSpec of a settings dict (process keys, unprefixed; missing keys take their
    defaults), as the pickers build it: presets and loaded files become specs here."""
    v = {**PROCESS_DEFAULTS, **settings}
    levels = None if v["levels"] == "max" else int(v["levels"])
    basis = BasisSpec(v["basis"], v["wavelet"], levels)
    prior = PriorSpec(v["prior"], float(v["exponent"]))
    if v["family"] != "soft":
        schedule = ScheduleSpec(
            family=v["family"],
            gamma_min=float(v["gmin"]),
            gamma_max=float(v["gmax"]),
            beta_min=float(v["bmin"]),
            beta_max=float(v["bmax"]),
        )
    else:
        schedule = ScheduleSpec(
            family="soft",
            labels=labels if v["order"] == "custom" else "",
            order=v["order"],
            softness=float(v["soft"]),
            gamma_denoise=float(v["gd"]),
            gamma_noise=None if v["gnauto"] else float(v["gn"]),
            clip=bool(v["clip"]),
        )
    return ProcessSpec(data_spec, basis, prior, schedule)


def query_params_all(settings: dict[str, Any]) -> dict[str, str]:
    return {k: query_value(v) for k, v in settings.items()}


def query_params(settings: dict[str, Any]) -> dict[str, str]:
    """URL parameters of a settings dict; values equal to their default are left out, as
    Streamlit itself does, so links stay short."""
    return {k: query_value(v) for k, v in settings.items() if v != default(k)}


# ---------------------------------------------------------------- pages and presets

# URL paths are the file stems: before the first st.navigation call of a fresh server Streamlit
# resolves a requested page against the pages/ folder, so any other path shows "Page not found".
PAGE_URLS = {"basis": "basis_prior", "schedule": "schedule_designer", "noising": "forward_noising"}
PLAY_STEP, PLAY_PERIOD_S = 0.02, 0.3  # Forward noising: t per frame, seconds per frame

PAGE_FILES = {
    "basis": "pages/basis_prior.py",
    "schedule": "pages/schedule_designer.py",
    "noising": "pages/forward_noising.py",
    "sampling": "pages/sampling.py",
    "compare": "pages/compare.py",
    "conditioning": "pages/conditioning.py",
    "lecture": "pages/lecture.py",
}


def _process(**kw: Any) -> dict[str, Any]:
    """A complete process setting: every picker key, defaults overridden by kw."""
    return {**PROCESS_DEFAULTS, **kw}


PRESETS: list[dict[str, Any]] = [
    {
        "name": "Standard diffusion",
        "page": "schedule",
        "text": "Pixel basis, white prior, one scalar linear γ for every pixel.",
        "settings": _process(basis="pixel", prior="white", family="linear", gmin=-10.0, gmax=10.0),
    },
    {
        "name": "Equal SNR",
        "page": "schedule",
        "text": "Fourier basis, data-matched prior, scalar schedule: every frequency has the same "
        "SNR at every time.",
        "settings": _process(basis="fourier", prior="data", family="linear", gmin=-10.0, gmax=10.0),
    },
    {
        "name": "Blurring-like",
        "page": "noising",
        "text": "Fourier basis, soft conditioning by scale: high frequencies are noised first, "
        "so the image blurs before it drowns.",
        "settings": _process(
            basis="fourier", prior="data", family="soft", order="scale", soft=2.0, clip=True
        ),
    },
    {
        "name": "Wavelet cascade",
        "page": "noising",
        "text": "Haar wavelets in scale order with small softness: coarse-to-fine generation, "
        "one level after another.",
        "settings": _process(
            basis="wavelet",
            wavelet="haar",
            levels="max",
            prior="data",
            family="soft",
            order="scale",
            soft=0.05,
            clip=True,
        ),
    },
    {
        "name": "Raster AR",
        "page": "schedule",
        "text": "Pixel basis, raster order, near-zero softness: one pixel after another.",
        "settings": _process(
            basis="pixel", prior="white", family="soft", order="raster", soft=0.1, clip=True
        ),
    },
    {
        "name": "Column AR",
        "page": "noising",
        "text": "Pixel basis, column order: the image is generated column by column.",
        "settings": _process(
            basis="pixel", prior="white", family="soft", order="column", soft=0.1, clip=True
        ),
    },
    {
        "name": "Haar + column",
        "page": "schedule",
        "text": "The paper's wavelet experiment: Haar levels coarse to fine, and within a level "
        "column by column.",
        "settings": _process(
            basis="wavelet",
            wavelet="haar",
            levels="max",
            prior="data",
            family="soft",
            order="scale_column",
            soft=0.05,
            clip=True,
        ),
    },
    {
        "name": "PCA by variance",
        "page": "schedule",
        "text": "PCA basis, variance order: principal components generated from the largest "
        "variance down.",
        "settings": _process(
            basis="pca", prior="data", family="soft", order="variance", soft=0.3, clip=True
        ),
    },
]
