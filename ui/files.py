"""Schedule files: what the Schedule designer exports and reads back.

    {"format": "rgdiff-schedule", "version": 1,
     "settings": {process control key: value as in the URL},     # reloads the controls
     "data": {...}, "basis": basis.spec(), "prior": prior.spec(),  # for the record
     "schedule": schedule.spec()}                                  # rgdiff_core.schedules

A file with valid "settings" sets the controls; one with only a "schedule" (or a bare
schedule spec with "family") is used as it is. Anything else raises ValueError with a message
for the page. Non-finite floats are written as the strings "inf", "-inf", "nan" (strict JSON).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

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
        return LoadedSchedule(parsed, None)
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
