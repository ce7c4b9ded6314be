"""The denoiser a run uses: the picker of exact and trained denoisers, a checkpoint's
settings sidecar (assets/models/<name>.json), and the cached denoiser and process.

An exact denoiser (empirical, Gaussian fitted or true covariance) runs on the controls' own
process. A trained network brings its own process (basis, prior, labels, data variances) from
its checkpoint, built at the chosen softness, clip and γ̃ targets; `process_for` and `denoiser`
give the pair a run uses, whichever kind was picked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from rgdiff_core.denoisers.checkpoints import load_checkpoint, process_from_checkpoint
from rgdiff_core.denoisers.registry import DenoiserSpec, build_denoiser
from rgdiff_core.specs import DataSpec, ProcessSpec, ScheduleSpec
from ui import cache, state, widgets

BIND: Any = "query-params"
MODELS_DIR = Path(__file__).resolve().parents[1] / "assets" / "models"
DENOISER_LABELS = {
    "empirical": "exact empirical (training set; reproduces training items)",
    "gaussian_fit": "exact Gaussian fitted to the data (mean and covariance)",
    "gaussian_true": "exact Gaussian, true covariance (Gaussian fields)",
}


def network_files() -> list[str]:
    return sorted(p.name for p in MODELS_DIR.glob("*.pt")) if MODELS_DIR.is_dir() else []


def denoiser_kinds(data: DataSpec) -> list[str]:
    kinds = ["empirical", "gaussian_fit"]
    if data.dataset == "fields":
        kinds.append("gaussian_true")
    return kinds + [f"network:{name}" for name in network_files()]


def denoiser_label(kind: str) -> str:
    return DENOISER_LABELS.get(kind, f"trained network ({kind.removeprefix('network:')})")


def denoiser_picker(data: DataSpec, key: str = "den", prefixes: tuple[str, ...] = ("",)) -> str:
    """The denoiser selectbox. Choosing a trained network sets the controls (those of every
    process prefix on the page) to the settings it was trained for before the page reruns,
    so it never first runs with a mismatch."""
    kinds = denoiser_kinds(data)
    chosen = st.session_state.get(key)
    if chosen not in kinds:
        st.session_state.pop(key, None)  # e.g. "true covariance" after leaving fields
        if isinstance(chosen, str) and chosen.startswith("network:"):
            st.warning(
                f"The checkpoint **{chosen.removeprefix('network:')}** is no longer in "
                "assets/models/ (removed or renamed), so the default denoiser is used."
            )
    kind = st.selectbox(
        "Denoiser",
        kinds,
        index=kinds.index(state.default(key)),
        key=key,
        bind=BIND,
        on_change=network_chosen,
        args=(key, prefixes),
        help="What estimates x̂₀ = E[x₀ | x_t]. Exact empirical: the optimal denoiser of the "
        "training set itself, so it reproduces training items. Exact Gaussian: the posterior "
        "mean of a Gaussian (fitted to any dataset, or the true field covariance). Trained "
        "network: a checkpoint from assets/models/.",
    )
    st.caption(denoiser_label(kind))
    if kind == "empirical":
        items_input(data)
    if kind.startswith("network:") and network_settings(kind):
        st.button(
            "Use the settings this network was trained for",
            on_click=apply_network_settings,
            args=(kind, prefixes),
            key=f"{key}_net_settings",
            help="Dataset, image size, basis, prior and schedule targets of the checkpoint; "
            "the softness stays free (the network serves a range of softness values).",
        )
    if not network_files():
        st.caption("No trained networks yet (assets/models/*.pt): they appear here once trained.")
    return kind


def dataset_items(data: DataSpec) -> int:
    """How many training items the dataset has (0 when it cannot be loaded, e.g. "upload"
    with nothing uploaded: the page's own checks say so)."""
    try:
        return len(cache.dataset(data))
    except ValueError:
        return 0


def empirical_items(data: DataSpec) -> int:
    """The training items the exact empirical denoiser uses: the "Training items" control
    (default state.RUN_DEFAULTS["items"]) capped at the dataset's size."""
    n = dataset_items(data)
    want = st.session_state.get("items", state.default("items"))
    want = want if isinstance(want, int) and not isinstance(want, bool) and want >= 1 else n
    return min(want, n)


def items_input(data: DataSpec) -> int:
    """The "Training items" control of the exact empirical denoiser (key items): its set is
    the first N items, and its cost per step grows linearly with N."""
    n = dataset_items(data)
    if n <= 1:
        return n
    widgets.clamp_state("items", 1, n)
    used = int(
        st.number_input(
            "Training items",
            1,
            n,
            value=min(state.default("items"), n),
            step=1000 if n > 5000 else 100,
            key="items",
            bind=BIND,
            help=f"The exact empirical denoiser of the first N of the {n:,} training items: "
            "its samples replay these items, and each step costs time in proportion to N. "
            f"All {n:,} items make every step {n / min(state.default('items'), n):.0f}× the "
            "default's cost.",
        )
    )
    if used < n:
        st.caption(f"Uses the first {used:,} of {n:,} training items.")
    return used


def network_settings(kind: str) -> dict[str, Any]:
    """Control values of the process a checkpoint was trained for, from its JSON sidecar
    (assets/models/<name>.json); {} when there is none or it cannot be read."""
    path = MODELS_DIR / (Path(kind.removeprefix("network:")).stem + ".json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        basis = doc["basis"]
        out = {"data": doc["dataset"], "size": int(doc["size"]), "basis": basis["name"],
               "prior": doc["prior"], "family": "soft", "order": doc["order"],
               "gd": float(doc["gamma_denoise"]), "gn": float(doc["gamma_noise"]), "gnauto": False,
               "clip": bool(doc["clip"])}  # fmt: skip
        if basis["name"] == "wavelet":
            levels = basis.get("levels")
            out["wavelet"] = basis.get("wavelet", "haar")
            out["levels"] = "max" if levels is None else str(levels)
        for key in ("basis", "prior", "order", "wavelet", "levels"):
            if key in out:
                state.parse_setting(key, out[key])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if out["data"] not in state.DATASETS or out["size"] not in state.SIZES:
        return {}
    return out


def apply_network_settings(kind: str, prefixes: tuple[str, ...] = ("",)) -> None:
    """Callback: set the controls to the network's process (before any widget is drawn).
    Dataset and size are the shared sidebar's; the process keys get each prefix."""
    for key, value in network_settings(kind).items():
        for prefix in ("",) if key in state.SIDEBAR_DEFAULTS else prefixes:
            st.session_state[prefix + key] = value


def network_chosen(key: str, prefixes: tuple[str, ...] = ("",)) -> None:
    """on_change of the denoiser selectbox: a network brings its trained settings."""
    kind = st.session_state.get(key)
    if isinstance(kind, str) and kind.startswith("network:"):
        apply_network_settings(kind, prefixes)


@st.cache_resource(max_entries=6, show_spinner="Building the denoiser…")
def _denoiser(d: DataSpec, b, p, kind: str, stamp: tuple | None, schedule, items, _process):
    # Samplers always pass the noise state, so one exact denoiser serves every schedule of a
    # (data, basis, prior): the key leaves the schedule out (None) for those. A network shows
    # known components at its process's gamma(0), so its key has the schedule. `stamp` is a
    # checkpoint file's (mtime, size), so a replaced file is loaded again.
    if kind.startswith("network:"):
        spec = DenoiserSpec("network", checkpoint=str(MODELS_DIR / kind.removeprefix("network:")))
        return build_denoiser(spec, _process)
    spec = DenoiserSpec(kind, dataset=d.dataset, items=items)
    return build_denoiser(spec, _process, cache.dataset(d))


def denoiser(spec: ProcessSpec, kind: str):
    """The denoiser on the spec's device; ValueError for an impossible choice."""
    process = process_for(spec, kind)
    network = kind.startswith("network:")
    schedule = spec.schedule if network else None
    stamp = checkpoint_stamp(kind)
    items = empirical_items(spec.data) if kind == "empirical" else 0
    # the seed is not part of a denoiser: sessions with other seeds share it
    data = cache.seedless(spec).data
    return _denoiser(data, spec.basis, spec.prior, kind, stamp, schedule, items, process)


def checkpoint_stamp(kind: str) -> tuple[int, int] | None:
    """(mtime, size) of a network's checkpoint file (None for the exact denoisers);
    ValueError when the file has gone."""
    if not kind.startswith("network:"):
        return None
    name = kind.removeprefix("network:")
    try:
        info = (MODELS_DIR / name).stat()
    except OSError:
        raise ValueError(
            f"the checkpoint {name} is no longer in assets/models/: pick another denoiser"
        ) from None
    return info.st_mtime_ns, info.st_size


@st.cache_resource(max_entries=8, show_spinner="Loading the network…")
def _network_process(name: str, stamp: tuple, schedule: ScheduleSpec, device: str):
    ckpt = load_checkpoint(MODELS_DIR / name, map_location="cpu")
    return process_from_checkpoint(
        ckpt,
        softness=schedule.softness,
        clip=schedule.clip,
        device=device,
        gamma_denoise=schedule.gamma_denoise,
        gamma_noise=schedule.gamma_noise,
    )


def network_mismatch(spec: ProcessSpec, kind: str) -> str | None:
    """What differs between the controls and the process a network was trained for."""
    want = network_settings(kind)
    if not want:
        return None  # no sidebar file: load_checkpoint's own checks speak
    have = {"data": spec.data.dataset, "size": spec.data.size, "basis": spec.basis.name,
            "prior": spec.prior.kind, "family": spec.schedule.family}  # fmt: skip
    diff = [f"{k} {want[k]!r} (not {have[k]!r})" for k in have if want[k] != have[k]]
    if not diff:
        return None
    return (f"This network was trained for {', '.join(diff)}. Press 'Use the settings this "
            "network was trained for', or pick another denoiser.")  # fmt: skip


def process_for(spec: ProcessSpec, kind: str):
    """The process a run uses. For a trained network it is the checkpoint's own (basis,
    prior, labels, data variances) at the chosen softness, clip and γ̃ targets, since the
    network was trained for exactly that prior; ValueError if the controls disagree."""
    if not kind.startswith("network:"):
        return cache.process(spec)
    problem = network_mismatch(spec, kind)
    if problem:
        raise ValueError(problem)
    name = kind.removeprefix("network:")
    return _network_process(name, checkpoint_stamp(kind), spec.schedule, spec.data.device)
