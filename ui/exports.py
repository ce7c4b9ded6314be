"""What the Sampling, Compare and Conditioning pages hand out: sample grids, x_t | x̂₀ frame
pairs and the trajectory GIF, and the settings file (every control of a run, as URL strings)
with its parser and the uploader that loads it back into the controls.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import streamlit as st
import torch

from rgdiff_core import experiments as ex
from rgdiff_core import viz
from rgdiff_core.samplers import SAMPLERS
from ui import custom_labels, denoiser_choice, files, state
from ui.runs import RECORD

RUN_KEYS = ("den", "sampler", "steps", "batch", "mode", "sweep", "tlimit")
SIDEBAR_KEYS = ("data", "size", "device", "seed")
LABELS_KEY = "_labels"  # parse_settings_file's entry for the custom order's labels


def zoom_for(size: int, target: int = 96) -> int:
    return max(1, target // size)


def grid_image(x: torch.Tensor, ncols: int = 8, zoom: int = 2) -> np.ndarray:
    return viz.upscale(viz.to_uint8(viz.image_grid(x.clamp(-1, 1), ncols=ncols)), zoom)


def frame_pair(traj: ex.Trajectory, i: int, k: int = RECORD, zoom: int = 2) -> np.ndarray:
    """x_t grid | x̂₀ grid of frame i (first k recorded samples), as one uint8 image."""
    ncols = max(1, math.ceil(math.sqrt(min(k, traj.x_t.shape[1]))))
    left = grid_image(traj.x_t[i, :k], ncols, zoom)
    right = grid_image(traj.x0_hat[i, :k], ncols, zoom)
    gap = np.full((left.shape[0], 4 * zoom) + left.shape[2:], 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def trajectory_gif(runs: list[ex.SamplingRun], k: int = 16, zoom: int = 2) -> bytes:
    """Animated GIF over the recorded frames; several runs side by side."""
    n = min(len(r.trajectory) for r in runs)
    frames = []
    for i in range(n):
        parts = [frame_pair(r.trajectory, i, k, zoom) for r in runs]
        gap = np.full((parts[0].shape[0], 8) + parts[0].shape[2:], 128, np.uint8)
        row = [p for part in parts for p in (part, gap)][:-1]
        frames.append(np.concatenate(row, axis=1))
    return viz.encode_gif(frames, duration_ms=120)


def settings_snapshot(session=None) -> dict[str, str]:
    """Every control that determines a run, as URL strings (from st.session_state, or any
    mapping of widget keys to values)."""
    session = st.session_state if session is None else session
    out = {}
    for key in SIDEBAR_KEYS + state.PROCESS_KEYS + RUN_KEYS:
        value = session[key] if key in session else state.default(key)
        if value is None:  # the automatic time limit
            out[key] = "auto"
        else:
            out[key] = (
                [str(v) for v in value] if isinstance(value, list) else state.query_value(value)
            )
    return out


def settings_json(settings: dict, run_info: dict, process=None, labels=None) -> str:
    """The settings file: `settings` reload the controls, with `labels` (the custom order's,
    written only when the settings use that order); the rest is for the record."""
    doc = {"format": "rgdiff-sampling", "version": 1, "settings": settings, "run": run_info}
    if labels is not None and settings.get("order") == "custom":
        doc["labels"] = [float(v) for v in labels]
    if process is not None:
        doc |= {"basis": process.basis.spec(), "prior": process.prior.spec()}
    return json.dumps(doc, indent=1, default=str)


def _parse_run_setting(key: str, value: Any) -> Any:
    if key == "den":
        exact = denoiser_choice.DENOISER_LABELS
        if not isinstance(value, str) or not (value in exact or value.startswith("network:")):
            raise ValueError(
                f"den must be one of {', '.join(exact)} or network:<file>, got {value!r}"
            )
        return value
    if key == "sampler":
        if value not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {value!r}")
        return value
    if key == "mode":
        if value not in state.SAMPLING_MODES:
            raise ValueError(f"mode must be single or sweep, got {value!r}")
        return value
    if key == "sweep":
        if not isinstance(value, list) or not all(v in state.SOFT_TEXT for v in value):
            raise ValueError(f"sweep must be a list of softness values from {state.SOFT_TEXT}")
        return value
    if key == "tlimit" and value in (None, "auto", "None"):
        return None  # the automatic time limit
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, got {value!r}") from None
    return number if key == "tlimit" else int(number)


def _parse_sidebar(key: str, value: Any) -> Any:
    if key == "data":
        if value == "upload":
            raise ValueError(
                "the run used uploaded images, which are not in the file: pick "
                "'upload' in the sidebar and add them again"
            )
        if value not in state.DATASETS:
            raise ValueError(f"data must be one of {', '.join(state.DATASETS)}, got {value!r}")
        return value
    if key == "device":
        if value not in state.DEVICES:
            raise ValueError(f"device must be one of {', '.join(state.DEVICES)}, got {value!r}")
        return value
    number = int(value)
    if key == "size" and number not in state.SIZES:
        raise ValueError(f"size must be one of {state.SIZES}, got {value!r}")
    if key == "seed" and not 0 <= number <= state.SEED_MAX:
        raise ValueError(f"seed must be in 0..{state.SEED_MAX}, got {value!r}")
    return number


def parse_settings_file(raw: bytes) -> dict[str, Any]:
    """Widget values from an exported settings file; ValueError saying what is wrong."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not a JSON text file") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != "rgdiff-sampling"
        or not isinstance(doc.get("settings"), dict)
    ):
        raise ValueError(
            "not an rgdiff sampling settings file (format 'rgdiff-sampling' with 'settings')"
        )
    out = {}
    for key, value in doc["settings"].items():
        try:
            if key in SIDEBAR_KEYS:
                out[key] = _parse_sidebar(key, value)
            elif key in RUN_KEYS:
                out[key] = _parse_run_setting(key, value)
            else:
                out[key] = state.parse_setting(key, value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings: {str(err) or key}") from None
    if out.get("order") == "custom" and "labels" in doc:
        try:
            out[LABELS_KEY] = files.labels_array(doc["labels"])
        except ValueError as err:
            raise ValueError(f"labels: {err}") from None
    return state.with_gamma_noise_mode(out)


def _apply_settings_file() -> None:
    f = st.session_state.get("settings_file")
    if f is None:
        return
    try:
        values = parse_settings_file(f.getvalue())
    except ValueError as err:
        st.session_state["_settings_msg"] = ("error", f"Could not load **{f.name}**: {err}")
        return
    labels = values.pop(LABELS_KEY, None)
    if labels is not None:
        custom_labels.hold_labels("", labels, f.name)
    for key, value in values.items():
        st.session_state[key] = value
    st.session_state["_settings_msg"] = (
        "success",
        f"Settings loaded from **{f.name}**: press **Run** to reproduce the run.",
    )


def settings_loader() -> None:
    """Uploader for an exported settings JSON; it sets every control (sidebar included)
    in its on_change callback, before any widget is drawn."""
    st.file_uploader(
        "Load settings (JSON)",
        type=["json"],
        key="settings_file",
        on_change=_apply_settings_file,
        help="A file from 'Settings as JSON' below: sets every control, the "
        "sidebar's included; the same seed then reproduces the same samples.",
    )
    msg = st.session_state.pop("_settings_msg", None)
    if msg:
        (st.error if msg[0] == "error" else st.success)(msg[1])
