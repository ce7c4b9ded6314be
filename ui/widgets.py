"""Process controls that return specs (basis, prior, schedule), shared by every page, with the
checks of their combinations and the schedule-file loader. Run controls are in
ui/run_controls.py, the custom order's labels in ui/custom_labels.py.

Every control has a key (= its URL query parameter, bind="query-params") and a help text. A
`prefix` keeps two copies apart on one page: "" for the main process, "b_" for the A/B one.
`attempt` is the page boundary: a library ValueError becomes an st.error, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st
import torch

from rgdiff_core import viz
from rgdiff_core.bases import BASES
from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec, ScheduleSpec
from ui import custom_labels, state

T = TypeVar("T")

BIND: Any = "query-params"


def attempt(
    what: str, fn: Callable[..., T], *args: Any, stop: bool = True, **kwargs: Any
) -> T | None:
    """fn(*args, **kwargs); a ValueError is shown as 'what: message' and stops the page (or
    returns None with stop=False), so a bad combination of controls never shows a traceback.
    Running out of memory (CUDA or host) is shown the same way, after freeing what the
    allocator caches, so a smaller choice works right after."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        st.error(f"**{what}:** {err}")
    except (torch.OutOfMemoryError, MemoryError) as err:
        free_memory()
        where = "GPU" if isinstance(err, torch.OutOfMemoryError) else "host"
        st.error(
            f"**{what}:** out of {where} memory ({str(err).splitlines()[0][:160]}). Nothing was "
            "kept: choose a smaller image size or batch, or the CPU, and try again."
        )
    if stop:
        st.stop()
    return None


def free_memory() -> None:
    """Return cached GPU blocks to the driver after an out-of-memory error."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def clamp_state(key: str, lo: float, hi: float) -> None:
    """Pull a stored control value (a number or a range pair) back into [lo, hi] before the
    control is drawn: a range that follows the image size may have shrunk since it was set."""
    value = st.session_state.get(key)
    if isinstance(value, tuple | list):
        clamped = tuple(min(max(v, lo), hi) for v in value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        clamped = min(max(value, lo), hi)
    else:
        return
    if clamped != value:
        st.session_state[key] = type(value)(clamped) if isinstance(value, list) else clamped


def keep_option(key: str, options: tuple) -> None:
    """Forget a stored choice that is no longer among the options (they follow the size)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def item_input(n_items: int, what: str) -> int:
    """The "Data item" number input (key img, 0..n_items-1, pulled into range first since
    the dataset, and so its length, may have changed)."""
    clamp_state("img", 0, n_items - 1)
    return int(
        st.number_input(
            "Data item",
            0,
            n_items - 1,
            value=min(state.default("img"), n_items - 1),
            step=1,
            key="img",
            bind=BIND,
            help=f"Which training image to {what} (0..{n_items - 1}).",
        )
    )


def _index(options: tuple, key: str) -> int:
    return options.index(state.default(key))


def selectbox(label: str, options: tuple, key: str, help: str, **kw: Any) -> Any:
    return st.selectbox(
        label, options, index=_index(options, key), key=key, help=help, bind=BIND, **kw
    )


# ---------------------------------------------------------------- basis and prior


def basis_picker(prefix: str = "", size: int = 32) -> BasisSpec:
    """Basis (+ wavelet family and levels). `size` only shapes the help text."""
    name = selectbox(
        "Basis",
        state.BASES,
        prefix + "basis",
        help="The orthonormal basis the noise acts in. pixel: identity; pca: principal "
        "components of the data; fourier: real cos/sin modes; dct: DCT-II; wavelet: "
        "orthogonal PyWavelets family, coarse to fine.",
    )
    wavelet, levels = state.default(prefix + "wavelet"), None
    options = BASES[name].option_names  # the choices this basis offers beyond its name
    if options:
        c1, c2 = st.columns(2)
    if "wavelet" in options:
        with c1:
            wavelet = selectbox(
                "Wavelet",
                state.WAVELETS,
                prefix + "wavelet",
                help="Orthogonal wavelet family (periodized).",
            )
    if "levels" in options:
        with c2:
            lv = selectbox(
                "Levels",
                state.LEVELS,
                prefix + "levels",
                help=f"Decomposition levels; max = log2(size) = "
                f"{int(math.log2(size))} at size {size}.",
            )
        levels = None if lv == "max" else int(lv)
    return BasisSpec(name=name, wavelet=wavelet, levels=levels)


def prior_picker(prefix: str = "") -> PriorSpec:
    kind = selectbox(
        "Prior",
        state.PRIORS,
        prefix + "prior",
        help="The Gaussian N(μ, UᵀS²U) the data relaxes to. white: S = 1 (μ = data mean); "
        "data: S² = data variance of each component (data-matched); power_law: "
        "S² ∝ (1 + scale)^-exponent.",
    )
    exponent = state.default(prefix + "exponent")
    if kind == "power_law":
        lo, hi, step = state.RANGES["exponent"]
        exponent = st.slider(
            "Power-law exponent",
            lo,
            hi,
            value=exponent,
            step=step,
            key=prefix + "exponent",
            bind=BIND,
            help="Prior variance ∝ (1 + scale)^-exponent, scaled to the data's mean variance.",
        )
    return PriorSpec(kind=kind, exponent=float(exponent))


# ---------------------------------------------------------------- schedule


def _number_slider(label: str, key: str, help: str) -> float:
    lo, hi, step = state.RANGES[key.removeprefix("b_")]
    return st.slider(
        label, lo, hi, value=state.default(key), step=step, key=key, bind=BIND, help=help
    )


def softness_slider(prefix: str = "", label: str | None = None) -> float:
    """The softness knob on a log grid, left = diffusion, right = autoregressive."""
    return st.select_slider(
        label or "Softness: diffusion ⟵ ⟶ autoregressive",
        options=state.SOFTNESS,
        value=state.default(prefix + "soft"),
        format_func=state.format_softness,
        key=prefix + "soft",
        bind=BIND,
        help="Softness s of the soft-conditioning schedule (log scale; inf = ∞). "
        + "; ".join(state.SOFTNESS_STORY)
        + " (stiffer, needs more steps).",
    )


def schedule_picker(prefix: str = "", softness_slot: Any = None, dim: int = 0) -> ScheduleSpec:
    """Family and its parameters. The softness slider goes into `softness_slot` (a container)
    when given, so a page can show it prominently elsewhere. `dim` (D) is what the custom
    order's labels file must hold."""
    family = selectbox(
        "Schedule family",
        state.FAMILIES,
        prefix + "family",
        help="linear / cosine / vp: one scalar γ(t) for every component; soft: "
        "soft-conditioning, one γ_i(t) per component from an ordering and a softness.",
    )
    d = ScheduleSpec()
    if family != "soft":
        c1, c2 = st.columns(2)
        with c1:
            gmin = _number_slider(
                "γ at t = 0",
                prefix + "gmin",
                help="γ = −log SNR of the whitened components at t = 0 (data end).",
            )
        gmax = state.default(prefix + "gmax")
        bmin, bmax = state.default(prefix + "bmin"), state.default(prefix + "bmax")
        if family != "vp":
            with c2:
                gmax = _number_slider(
                    "γ at t = 1",
                    prefix + "gmax",
                    help="γ at t = 1 (noise end); must exceed γ at t = 0.",
                )
        else:
            with c2:
                bmin = _number_slider(
                    "β_min",
                    prefix + "bmin",
                    help="VP noise rate β(t) at t = 0; β rises linearly to β_max at t = 1 "
                    "(DDPM's continuous form: 0.1 → 20).",
                )
            bmax = _number_slider(
                "β_max",
                prefix + "bmax",
                help="VP noise rate β(t) at t = 1; must exceed β_min. Larger: less signal "
                "left at t = 1.",
            )
            if bmax > bmin:
                from rgdiff_core.schedules import vp_schedule

                g1 = float(vp_schedule(bmin, bmax, float(gmin)).gamma(1.0))
                st.caption(f"VP: β from {bmin:g} to {bmax:g}, so γ(1) = {g1:.1f}.")
        return ScheduleSpec(
            family=family,
            gamma_min=float(gmin),
            gamma_max=float(gmax),
            beta_min=float(bmin),
            beta_max=float(bmax),
        )
    order = selectbox(
        "Order",
        state.ORDERS,
        prefix + "order",
        help="Which components are generated first (lowest label first). variance: largest "
        "data variance first; scale: coarse to fine (wavelet level, |k|, PCA rank); "
        "row / column / raster: pixel position (pixel and wavelet bases); scale_column: "
        "wavelet level, then column (the paper's wavelet experiment); custom: your own "
        "labels, one per component, from a file.",
    )
    labels = custom_labels.custom_labels_input(prefix, dim) if order == "custom" else ""
    if softness_slot is not None:
        with softness_slot:
            softness = softness_slider(prefix)
            left, right = st.columns(2)
            left.caption(
                "◀ diffusion: s = ∞ all components at one SNR, generated together; s = 1 a "
                "soft order (with variance order: standard diffusion)"
            )
            right.caption(
                "autoregressive: s → 0, one group after another in the basis's order ▶",
                text_alignment="right",
            )
    else:
        softness = softness_slider(prefix, label="Softness (diffusion ⟵ ⟶ AR)")
    c1, c2 = st.columns(2)
    with c1:
        gd = _number_slider(
            "γ̃_d (denoised end)",
            prefix + "gd",
            help="Target −log SNR the last-generated component reaches at t = 0.",
        )
    with c2:
        auto = st.checkbox(
            "γ̃_n auto",
            value=state.default(prefix + "gnauto"),
            key=prefix + "gnauto",
            bind=BIND,
            help="Choose the noised-end target from the data: the smallest γ̃_n for which the "
            "process reaches its prior at t = 1 (prior term L_T ≤ 0.1 nat). Untick to set it.",
        )
        lo, hi, step = state.RANGES["gn"]
        gn = st.slider(
            "γ̃_n (noised end)",
            lo,
            hi,
            value=state.default(prefix + "gn"),
            step=step,
            key=prefix + "gn",
            bind=BIND,
            disabled=auto,
            help="Target −log SNR the first-generated component reaches at t = 1 (when "
            "γ̃_n auto is off). Too small leaves signal at t = 1: see the prior term L_T.",
        )
    clip = st.checkbox(
        "Clip",
        value=state.default(prefix + "clip"),
        key=prefix + "clip",
        bind=BIND,
        help="Freeze each component outside its window: effective −log SNR at least γ̃_d, "
        "and at most γ̃_n (raw γ̃_n where a component has less variance than the prior, so "
        "none stops short of noise). Needed for the autoregressive limit.",
    )
    return ScheduleSpec(
        family="soft",
        labels=labels,
        order=order,
        softness=float(softness),
        gamma_denoise=float(gd),
        gamma_noise=None if auto else float(gn),
        clip=bool(clip),
        gamma_min=d.gamma_min,
        gamma_max=d.gamma_max,
    )


def process_picker(data: DataSpec, prefix: str = "", softness_slot: Any = None) -> ProcessSpec:
    """Basis, prior and schedule controls -> ProcessSpec."""
    b = basis_picker(prefix, data.size)
    p = prior_picker(prefix)
    s = schedule_picker(prefix, softness_slot, dim=math.prod(data.shape))
    return ProcessSpec(data=data, basis=b, prior=p, schedule=s)


def grouping_picker(key: str = "groups") -> str:
    return selectbox(
        "Group components by",
        state.GROUPINGS,
        key,
        help="basis: the basis's own groups (wavelet sub-bands, |k| rings, PCA rank bins, "
        "pixel rows); order: the generation order, cut into up to 32 consecutive groups by "
        "label; auto: order for row / column / raster / custom orders (where the basis "
        "groups mix early and late components), else basis.",
    )


def display_groups(bas, info, schedule: ScheduleSpec, how: str) -> tuple[list, str]:
    """(groups in the format of basis.groups(), a caption word) for group-mean plots."""
    if how == "auto":
        spatial = schedule.family == "soft" and schedule.order in (
            "row",
            "column",
            "raster",
            "scale_column",
            "custom",
        )
        how = "order" if spatial else "basis"
    if how == "order":
        return viz.order_groups(info.order_labels), "order groups"
    return bas.groups(), "basis groups"


def check_basis(b: BasisSpec, size: int) -> str | None:
    """A plain-words problem with the basis controls, or None."""
    if "levels" in BASES[b.name].option_names and b.levels is not None and 2**b.levels > size:
        return (
            f"{b.levels} wavelet levels need images of at least {2**b.levels} px, but the "
            f"image size is {size}: lower the levels (max {int(math.log2(size))}) or raise "
            f"the image size."
        )
    return None


def check_process(spec: ProcessSpec) -> str | None:
    """A plain-words problem with a combination of controls, or None (checked before any
    library call, so the message can say what to change)."""
    b, s = spec.basis, spec.schedule
    problem = check_basis(b, spec.data.size)
    if problem:
        return problem
    if (
        s.family == "soft"
        and s.order in ("row", "column", "raster", "scale_column")
        and b.name not in ("pixel", "wavelet")
    ):
        return (
            f"Order '{s.order}' needs components with a position in the image, which the "
            f"{b.name} basis does not have: pick the pixel or wavelet basis, or order by "
            f"variance or scale."
        )
    if s.family == "soft" and s.order == "custom":
        from ui import cache

        dim = math.prod(spec.data.shape)
        labels = cache.custom_labels(s.labels)
        if labels is None:
            return (
                f"Order 'custom' needs a labels file: load {dim} numbers (one per component) "
                f"under Order, or pick another order."
            )
        if labels.size != dim:
            return (
                f"The custom labels hold {labels.size} numbers, but the basis has {dim} "
                f"components (image size {spec.data.size}): load labels for this size or "
                f"change the image size back."
            )
    if s.family == "vp" and s.beta_max <= s.beta_min:
        return "β_max must exceed β_min: raise β_max or lower β_min."
    if s.family in ("linear", "cosine") and s.gamma_max <= s.gamma_min:
        return "γ at t = 1 must exceed γ at t = 0: raise one or lower the other."
    if s.family == "soft" and s.gamma_noise is not None and s.gamma_noise <= s.gamma_denoise:
        return "γ̃_n must exceed γ̃_d: raise γ̃_n or lower γ̃_d."
    return None


def schedule_loader(prefix: str = ""):
    """Uploader for a schedule JSON; call it before the pickers. A file with settings sets
    the controls (once per file); a file with only a schedule returns that Schedule, to be
    used instead of the controls while it stays loaded. A malformed file shows st.error and
    changes nothing."""
    from ui import files

    f = st.file_uploader(
        "Load a schedule (JSON)",
        type=["json"],
        key=prefix + "sched_file",
        help="A file exported below (sets the controls) or a schedule spec with a 'family' "
        "(used as is). Not part of the page link.",
    )
    if f is None:
        return None
    try:
        loaded = files.parse_schedule_file(f.getvalue())
    except ValueError as err:
        st.error(f"Could not load **{f.name}**: {err}. The current schedule is kept.")
        return None
    if loaded.settings is None:
        st.info(f"Showing the schedule from **{f.name}**; remove the file to use the controls.")
        return loaded.schedule
    tag = f"{prefix}_applied_file"
    if st.session_state.get(tag) != f.file_id:
        for key, value in loaded.settings.items():
            st.session_state[prefix + key] = value
        if loaded.labels is not None:  # the custom order's labels travel in the file
            custom_labels.hold_labels(prefix, loaded.labels, f.name)
        st.session_state[tag] = f.file_id
        st.success(f"Controls set from **{f.name}**.")
    return None
