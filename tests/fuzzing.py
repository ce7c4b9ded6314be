"""Page fuzzing under AppTest: widgets found generically in the element tree, random values
over each widget's whole range (extremes with raised probability), many widgets per run.

A `PageFuzzer` keeps one AppTest per page. Each combination sets every interactive widget the
page currently shows (sidebar included) to a drawn value, sometimes presses a button, runs the
script once and checks the result: no exception element, no text containing "Traceback", and
every st.error / st.warning a non-empty sentence. Widgets that only appear under some settings
(the power-law exponent, the A/B process, the hole sliders ...) are drawn in the combinations
after the one that revealed them. The draws come from one `random.Random(f"{seed}:{page}")`,
so a (seed, page, count) triple replays exactly; a failure names them and the combination.

Cost guards, so a combination stays cheap on a 2-core CI machine (the ranges are still drawn
in full; only a pressed Run is made small): `pinned` holds widgets at fixed values (the image
size: 16 px), and when a Run button is pressed the run controls are redrawn from a small range
(steps <= 40, batch <= 8, time limit <= 2 s) so the sampler itself is bounded.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import element_tree as et

EXTREME_P = 0.3  # probability of drawing an end of a range (each end half of it)
BUTTON_P = 0.25  # probability of pressing one of the page's (non-download) buttons
RUN_P = 0.4  # ... when the page offers a Run button (then a Run with probability 0.7)
MUTATE_P = 0.6  # probability of changing 1-3 widgets of the last combination without errors
TRACEBACK = "Traceback"
# What a pressed Run may cost: the run controls are redrawn inside these ranges.
CHEAP_RUN = {
    "steps": (10, 40),
    "b_steps": (10, 40),
    "batch": (1, 8),
    "cn": (1, 8),
    "lec_steps": (10, 40),
}
CHEAP_TIME_LIMIT = (0.05, 2.0)
RUN_BUTTONS = ("run_button", "run_compare", "run_sweep", "run_cond", "lecture_start")


class Label(str):
    """A widget option given by its formatted label (what the browser sends)."""


def _label_aware(fmt):
    def wrapped(v: Any) -> Any:
        if isinstance(v, Label):
            return str(v)
        if isinstance(v, (list, tuple)) and v and all(isinstance(x, Label) for x in v):
            return [str(x) for x in v]
        return fmt(v)

    return wrapped


def install_label_support(monkeypatch) -> None:
    """Let select sliders take formatted labels (AppTest serialises them through the page's
    format_func, which expects the raw option)."""
    orig = et.SelectSlider.format_func

    monkeypatch.setattr(
        et.SelectSlider, "format_func", property(lambda self: _label_aware(orig.fget(self)))
    )


# ---------------------------------------------------------------- widgets and draws

KINDS = (
    "selectbox",
    "radio",
    "select_slider",
    "slider",
    "number_input",
    "checkbox",
    "toggle",
    "multiselect",
    "button_group",
    "text_input",
    "text_area",
)


def widgets(at: AppTest) -> list:
    """Every keyed, enabled, settable widget in the tree (main area and sidebar)."""
    out = []
    for kind in KINDS:
        for w in at.get(kind):
            if getattr(w, "key", None) and not getattr(w.proto, "disabled", False):
                out.append(w)
    return out


def buttons(at: AppTest) -> list:
    return [b for b in at.get("button") if b.key and not b.proto.disabled]


def _end(rng: random.Random) -> bool:
    return rng.random() < EXTREME_P


def _number(
    rng: random.Random, lo: float, hi: float, step: float, integer: bool, default: float | None
) -> float:
    """A value in [lo, hi] on the step grid: an end, near the default (a factor of 10 either
    way, where most valid values live), uniform, or log-uniform in the distance from lo (so a
    huge range still gives small values)."""
    r = rng.random()
    if r < EXTREME_P:
        x = lo if rng.random() < 0.5 else hi
        return int(x) if integer else float(x)
    if r < EXTREME_P + 0.35 and default is not None:
        a, b = (default / 10, default * 10) if default > 0 else (default - 10, default + 10)
        x = rng.uniform(max(lo, min(a, b)), min(hi, max(a, b)))
    elif r < EXTREME_P + 0.55 or hi - lo <= 1:
        x = rng.uniform(lo, hi)
    else:
        x = lo + math.exp(rng.uniform(0.0, math.log(hi - lo)))
    if step:
        x = lo + round((x - lo) / step) * step
    x = min(max(x, lo), hi)
    return int(round(x)) if integer else float(x)


def _default(w) -> float | None:
    d = getattr(w.proto, "default", None)
    if d is None:
        return None
    if isinstance(d, (int, float)):
        return float(d) if w.proto.HasField("default") else None
    return float(d[0]) if len(d) == 1 else None


def _option(rng: random.Random, n: int) -> int:
    if _end(rng):
        return 0 if rng.random() < 0.5 else n - 1
    return rng.randrange(n)


TEXTS = ("", " ", "a", "0", "-1", "1e309", "nan", "ü∞✓", "x" * 2000, "<script>", "'; --")


def draw(w, rng: random.Random) -> Any:
    """A value for widget w (None: leave it as it is)."""
    kind = type(w).__name__
    if kind in ("Selectbox", "Radio", "ButtonGroup"):
        if not w.options:
            return None
        return Label(w.options[_option(rng, len(w.options))])
    if kind == "SelectSlider":
        n = len(w.options)
        if isinstance(w.value, (list, tuple)):
            a, b = sorted((_option(rng, n), _option(rng, n)))
            return [Label(w.options[a]), Label(w.options[b])]
        return Label(w.options[_option(rng, n)])
    if kind == "Slider":
        lo, hi, step = w.min, w.max, w.step
        integer = isinstance(lo, int) and isinstance(hi, int) and float(step).is_integer()
        if isinstance(w.value, (list, tuple)):
            return sorted(_number(rng, lo, hi, step, integer, None) for _ in range(2))
        return _number(rng, lo, hi, step, integer, _default(w))
    if kind == "NumberInput":
        integer = w.proto.data_type == w.proto.DataType.INT
        lo = w.min if w.min is not None else -1e9
        hi = w.max if w.max is not None else 1e9
        step = w.step or (1 if integer else 0.0)
        return _number(rng, lo, hi, step, integer, _default(w))
    if kind in ("Checkbox", "Toggle"):
        return rng.random() < 0.5
    if kind == "Multiselect":
        opts = list(w.options)
        r = rng.random()
        pick = [] if r < 0.15 else opts if r < 0.3 else rng.sample(opts, rng.randint(1, len(opts)))
        return [Label(o) for o in pick]
    if kind in ("TextInput", "TextArea"):
        return rng.choice(TEXTS)
    return None


def fits(w, value: Any) -> bool:
    """Whether a value kept from an earlier tree is still valid for widget w."""
    kind = type(w).__name__
    try:
        if kind in ("Selectbox", "Radio", "ButtonGroup", "SelectSlider", "Multiselect"):
            values = value if isinstance(value, (list, tuple)) else [value]
            fmt = w.format_func
            return all((str(v) if isinstance(v, Label) else fmt(v)) in w.options for v in values)
        if kind in ("Slider", "NumberInput"):
            values = value if isinstance(value, (list, tuple)) else [value]
            lo = -math.inf if w.min is None else w.min
            hi = math.inf if w.max is None else w.max
            return all(lo <= v <= hi for v in values)
    except Exception:
        return False
    return True


def set_widget(w, value: Any) -> None:
    kind = type(w).__name__
    if kind == "Multiselect":
        w.set_value(list(value))
    else:
        w.set_value(value)


# ---------------------------------------------------------------- checks

TEXT_KINDS = ("markdown", "caption", "error", "warning", "info", "success", "text", "code")


def alerts(at: AppTest) -> dict[str, list[str]]:
    return {"error": [e.value for e in at.error], "warning": [w.value for w in at.warning]}


def problems(at: AppTest) -> list[str]:
    """What is wrong with the page after a run (empty if nothing)."""
    out = [f"exception: {e.value}\n" + "\n".join(e.stack_trace[-8:]) for e in at.exception]
    for kind in TEXT_KINDS:
        for el in at.get(kind):
            text = str(getattr(el, "value", "") or "")
            if TRACEBACK in text:
                out.append(f"{kind} shows a traceback: {text[:300]}")
    for kind, texts in alerts(at).items():
        for text in texts:
            if len(text.strip()) < 15:
                out.append(f"{kind} without an explanation: {text!r}")
    return out


def template(text: str) -> str:
    """A message with its numbers and quoted values blanked, for counting kinds of messages."""
    import re

    text = re.sub(r"\*\*", "", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    return re.sub(r"-?\d[\d,.e+-]*", "#", text)[:120]


# ---------------------------------------------------------------- the fuzzer


@dataclass
class FuzzReport:
    page: str
    seed: int
    combinations: int = 0
    runs: int = 0
    button_presses: Counter = field(default_factory=Counter)
    with_error: int = 0
    without_error: int = 0
    with_warning: int = 0
    messages: Counter = field(default_factory=Counter)
    widgets_seen: set = field(default_factory=set)
    extremes_hit: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "page": self.page,
            "seed": self.seed,
            "combinations": self.combinations,
            "script_runs": self.runs,
            "button_presses": dict(self.button_presses),
            "combinations_with_error": self.with_error,
            "combinations_without_error": self.without_error,
            "combinations_with_warning": self.with_warning,
            "widgets": sorted(self.widgets_seen),
            "extremes_hit": dict(self.extremes_hit),
            "seconds": round(self.seconds, 1),
            "messages": dict(self.messages.most_common()),
        }


class FuzzFailure(AssertionError):
    pass


class PageFuzzer:
    """Random combinations on one page of one AppTest (see the module docstring)."""

    def __init__(self, at: AppTest, page: str, seed: int, pinned: dict[str, Any] | None = None):
        self.at, self.page, self.seed = at, page, seed
        self.rng = random.Random(f"{seed}:{page}")
        self.pinned = pinned or {}
        self.report = FuzzReport(page, seed)
        self.last: dict[str, Any] = {}
        self.valid: dict[str, Any] = {}  # widget values after the last run without st.error

    def _fail(self, index: int, combo: dict, found: list[str]) -> None:
        raise FuzzFailure(
            f"page {self.page!r}, seed {self.seed}, combination {index} "
            f"(replay: RGDIFF_FUZZ_SEED={self.seed} RGDIFF_FUZZ_N={index + 1}):\n"
            f"  combination: {combo}\n  previous: {self.last}\n" + "\n".join(found)
        )

    def _run(self) -> None:
        self.at.run()
        self.report.runs += 1

    def _values(self, index: int) -> dict[str, Any]:
        """Set the widgets of the current tree: every one drawn afresh, or (MUTATE_P, once a
        combination without errors exists) that combination with 1-3 widgets redrawn, the way
        a user clicks around a working view."""
        rng = self.rng
        current = widgets(self.at)
        keep: dict[str, Any] = {}
        if self.valid and rng.random() < MUTATE_P:
            keys = [w.key for w in current]
            redraw = set(rng.sample(keys, min(len(keys), rng.randint(1, 3))))
            keep = {k: v for k, v in self.valid.items() if k not in redraw}
        combo: dict[str, Any] = {}
        for w in current:
            if w.key in self.pinned:
                value = self.pinned[w.key]
            elif w.key in keep and fits(w, keep[w.key]):
                value = keep[w.key]
            else:
                value = draw(w, rng)
            if value is None:
                continue
            self.report.widgets_seen.add(w.key)
            self._note_extreme(w, value)
            set_widget(w, value)
            combo[w.key] = value
        return combo

    def _press(self, combo: dict[str, Any]) -> None:
        """Maybe press one of the page's buttons (Run ones with cheap run controls)."""
        pressable = buttons(self.at)
        runs = [b for b in pressable if b.key in RUN_BUTTONS]
        if not pressable or self.rng.random() >= (RUN_P if runs else BUTTON_P):
            return
        press = self.rng.choice(runs if runs and self.rng.random() < 0.7 else pressable)
        if press.key in RUN_BUTTONS:
            self._cheapen(combo)
        combo["<press>"] = press.key
        press.click()
        self.report.button_presses[press.key] += 1
        self._run()

    def combination(self, index: int) -> dict[str, Any]:
        at = self.at
        combo: dict[str, Any] = {}
        try:
            combo = self._values(index)
            self._run()
            found = problems(at)
            if found:
                self._fail(index, combo, found)
            self._press(combo)
        except FuzzFailure:
            raise
        except Exception as err:  # the harness itself (AppTest) failed on this combination
            self._fail(index, combo, [f"AppTest raised {type(err).__name__}: {err}"])
        found = problems(at)
        if found:
            self._fail(index, combo, found)
        seen = alerts(at)
        self.report.with_error += bool(seen["error"])
        self.report.with_warning += bool(seen["warning"])
        for kind, texts in seen.items():
            for text in texts:
                self.report.messages[f"{kind}: {template(text)}"] += 1
        if not seen["error"]:
            self.report.without_error += 1
            self.valid = {w.key: w.value for w in widgets(at)}
        self.report.combinations += 1
        self.last = combo
        return combo

    def _note_extreme(self, w, value) -> None:
        kind = type(w).__name__
        lo = hi = None
        if kind in ("Slider", "NumberInput"):
            lo, hi = w.min, w.max
        elif kind in ("Selectbox", "Radio", "SelectSlider", "ButtonGroup") and w.options:
            lo, hi = w.options[0], w.options[-1]
        if isinstance(value, (list, tuple)):
            return
        if lo is not None and value == lo:
            self.report.extremes_hit[f"{w.key}=min"] += 1
        elif hi is not None and value == hi:
            self.report.extremes_hit[f"{w.key}=max"] += 1

    def _cheapen(self, combo: dict[str, Any]) -> None:
        """A pressed Run samples: redraw its cost controls from a small range."""
        for w in widgets(self.at):
            if w.key in CHEAP_RUN:
                lo, hi = CHEAP_RUN[w.key]
                value = lo if self.rng.random() < 0.3 else self.rng.randint(lo, hi)
            elif w.key == "tlimit":
                value = round(self.rng.uniform(*CHEAP_TIME_LIMIT), 2)
            else:
                continue
            set_widget(w, value)
            combo[w.key] = value

    def fuzz(self, n: int) -> FuzzReport:
        start = time.perf_counter()
        try:
            for i in range(n):
                self.combination(i)
        finally:
            self.report.seconds += time.perf_counter() - start
        return self.report
