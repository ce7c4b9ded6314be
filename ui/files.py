"""Schedule files: what the Schedule designer exports and reads back.

    {"format": "rgdiff-schedule", "version": 1,
     "settings": {process control key: value as in the URL},     # reloads the controls
     "data": {...}, "basis": basis.spec(), "prior": prior.spec(),  # for the record
     "schedule": schedule.spec()}                                  # rgdiff_core.schedules

A file with valid "settings" sets the controls; one with only a "schedule" (or a bare
schedule spec with "family") is used as it is. Anything else raises ValueError with a message
for the page. Non-finite floats are written as the strings "inf", "-inf", "nan" (strict JSON).

Labels files (the custom order): D numbers, one per component in the basis's component order,
as text (CSV / whitespace, '#' comments), JSON (a list, nested lists, or {"labels": [...]}) or
NumPy .npy (never unpickled). `labels_csv` writes the text form, which reads back the same.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from rgdiff_core.schedules import Schedule, schedule_from_spec
from ui import state

FORMAT = "rgdiff-schedule"
MAX_BYTES = 5_000_000


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def schedule_json(settings: dict[str, Any], data: dict, basis, prior, schedule: Schedule) -> str:
    doc = {
        "format": FORMAT,
        "version": 1,
        "settings": state.query_params_all(settings),
        "data": data,
        "basis": basis.spec(),
        "prior": prior.spec(),
        "schedule": schedule.spec(),
    }
    return json.dumps(_jsonable(doc), indent=1)


@dataclass(frozen=True)
class LoadedSchedule:
    settings: dict[str, Any] | None  # process control values (unprefixed keys)
    schedule: Schedule | None  # used as is when there are no settings
    labels: np.ndarray | None = None  # the custom order's labels, when the settings use it


def parse_schedule_file(raw: bytes) -> LoadedSchedule:
    """Read an exported (or hand-written) schedule file; ValueError on anything malformed."""
    if len(raw) > MAX_BYTES:
        raise ValueError(
            f"the file is {len(raw) / 1e6:.1f} MB; schedule files are at most "
            f"{MAX_BYTES / 1e6:.0f} MB"
        )
    try:
        doc = json.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark is fine
    except UnicodeDecodeError:
        raise ValueError("the file is not text (expected a JSON schedule file)") from None
    except json.JSONDecodeError as err:
        raise ValueError(
            f"not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        ) from None
    except RecursionError:  # json recurses once per nesting level
        raise ValueError("the JSON is nested too deeply to be a schedule file") from None
    if not isinstance(doc, dict):
        raise ValueError("the JSON must be an object with 'settings' or 'schedule'")
    if "settings" in doc:
        settings = doc["settings"]
        if not isinstance(settings, dict) or not settings:
            raise ValueError("'settings' must be a non-empty object of control values")
        parsed = {}
        for key, value in settings.items():
            try:
                parsed[key] = state.parse_setting(key, value)
            except ValueError as err:
                raise ValueError(f"settings: {err}") from None
        labels = None
        if parsed.get("order") == "custom":
            spec = doc.get("schedule")
            raw_labels = spec.get("labels") if isinstance(spec, dict) else None
            if raw_labels is not None:
                labels = labels_array(raw_labels)
        return LoadedSchedule(state.with_gamma_noise_mode(parsed), None, labels)
    spec = doc.get("schedule", doc if "family" in doc else None)
    if not isinstance(spec, dict):
        raise ValueError("the JSON has neither 'settings' nor a 'schedule' object with a 'family'")
    spec = dict(spec)
    for key in ("softness", "gamma_min", "gamma_max", "gamma_denoise", "gamma_noise"):
        if isinstance(spec.get(key), str):
            try:
                spec[key] = float(spec[key])
            except ValueError:
                raise ValueError(f"schedule: {key} must be a number, got {spec[key]!r}") from None
    try:
        return LoadedSchedule(None, schedule_from_spec(spec))
    except (ValueError, TypeError, RuntimeError) as err:  # torch may reject odd labels
        raise ValueError(f"schedule: {err}") from None


# ---------------------------------------------------------------- custom labels

MAX_LABEL_BYTES = 2_000_000
_SEPARATORS = re.compile(r"[,;\s]+")


def labels_array(values: Any, dim: int | None = None) -> np.ndarray:
    """Numbers (any nesting of lists, or an array) -> (D,) float64 labels, flattened in
    row-major order; ValueError unless there are `dim` (if given) finite real numbers."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):  # ragged nesting
        raise ValueError("labels must be a flat list of numbers or a regular array") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"labels must be real numbers, got an array of {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("the labels file holds no numbers")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(
            f"labels must be finite; number {bad[0] + 1} is {arr[bad[0]]} "
            f"({bad.size} non-finite in all)"
        )
    if dim is not None and arr.size != dim:
        raise ValueError(
            f"it holds {arr.size} numbers, but the basis has {dim} components (one label "
            f"each, in component order): write {dim} numbers or change the image size"
        )
    return arr


def _labels_text(text: str) -> list[float]:
    out: list[float] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        for token in filter(None, _SEPARATORS.split(line)):
            try:
                out.append(float(token))
            except ValueError:
                raise ValueError(
                    f"line {lineno}: {token[:40]!r} is not a number (a labels text file holds "
                    f"numbers separated by commas or spaces; '#' starts a comment)"
                ) from None
    return out


def parse_labels(raw: bytes, filename: str, dim: int) -> np.ndarray:
    """A labels file (.npy, .json, or text such as .csv / .txt) -> (dim,) float64 labels;
    ValueError saying what is wrong. A .npy file is read with allow_pickle=False."""
    if len(raw) > MAX_LABEL_BYTES:
        raise ValueError(
            f"the file is {len(raw) / 1e6:.1f} MB; labels files are at most "
            f"{MAX_LABEL_BYTES / 1e6:.0f} MB ({dim} numbers are needed)"
        )
    name = filename.lower()
    if name.endswith(".npy") or raw.startswith(b"\x93NUMPY"):
        try:
            values = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as err:  # object arrays need pickle: refused, never executed
            if "pickle" in str(err).lower():
                raise ValueError("the .npy file holds Python objects; save plain numbers") from None
            raise ValueError(f"not a readable .npy file ({err})") from None
        except (OSError, EOFError):
            raise ValueError("not a readable .npy file (truncated or corrupt)") from None
        return labels_array(values, dim)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the file is neither text (CSV, JSON) nor a NumPy .npy file") from None
    if name.endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON ({err.msg} at line {err.lineno})") from None
        except RecursionError:
            raise ValueError("the JSON is nested too deeply to be a list of labels") from None
        if isinstance(doc, dict):
            if "labels" not in doc:
                raise ValueError("a JSON object must hold the numbers under 'labels'")
            doc = doc["labels"]
        return labels_array(doc, dim)
    return labels_array(_labels_text(text), dim)


def labels_csv(labels: np.ndarray, what: str) -> str:
    """Labels as text, one per line (component order), with a '#' header saying `what`."""
    body = "\n".join(repr(float(v)) for v in np.asarray(labels, dtype=np.float64).reshape(-1))
    return (
        f"# rgdiff labels: {what}; {len(labels)} components in the basis's order; lower label "
        f"= generated first. Edit and load with order 'custom'.\n{body}\n"
    )
