"""Saved files reload to the same samples.

tests/fixtures/ holds two Sampling settings JSONs and one Schedule designer JSON saved before
the settings -> objects builder (rgdiff_core.specs) existed, with the samples each settings
file reloads to (AppTest, the page's own Run) and the schedule's gamma_i(t), and a few samples
of every shipped checkpoint at softness 0.5.
The builder refactor reproduced the samples recorded before it exactly. The samples of the
clipped settings files and of the checkpoints were recorded again when the upper clip was
redesigned (docs/maths.md §2b: a component with v < 1 now noises on to raw gamma_noise), the
one intended change; the schedule file's gamma_i(t) is still the one recorded before the
refactor. A change in how settings become a process changes these samples and fails here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_app_part2 import click, navigation_mode, open_page, stored  # noqa: F401

FIXTURES = Path(__file__).parent / "fixtures"
MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"


@pytest.mark.parametrize("name", ["sampling_settings_main", "sampling_settings_main_empirical"])
def test_sampling_settings_file_reloads_to_the_same_samples(name):
    raw = (FIXTURES / f"{name}.json").read_bytes()
    at = open_page("sampling")
    at.get("file_uploader")[0].set_value((f"{name}.json", raw, "application/json"))
    at.run()
    assert "Settings loaded" in " ".join(str(s.value) for s in at.success)
    click(at, "run_button")
    want = torch.from_numpy(np.load(FIXTURES / f"{name}_samples.npy"))
    torch.testing.assert_close(stored(at)[-1].samples, want, rtol=1e-5, atol=1e-5)


def test_schedule_file_reloads_to_the_same_schedule():
    """The file sets the Schedule designer's controls (its γ̃_n is the one it names: files
    from before γ̃_n auto mean it), and those settings rebuild gamma_i(t) as recorded."""
    from rgdiff_core.specs import DataSpec
    from ui import cache, files, state

    raw = (FIXTURES / "schedule_main.json").read_bytes()
    loaded = files.parse_schedule_file(raw)
    at = open_page("schedule_designer", sidebar={"seed": 3})
    at.get("file_uploader")[0].set_value(("schedule.json", raw, "application/json"))
    at.run()
    assert not at.error and not at.exception
    for key, value in loaded.settings.items():
        assert at.session_state[key] == value, key
    assert at.session_state["gnauto"] is False and at.session_state["gn"] == 4.0
    spec = state.process_spec(loaded.settings, DataSpec("digits", 16))
    info = cache.schedule(spec.data, spec.basis, spec.prior, spec.schedule)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    want = torch.from_numpy(np.load(FIXTURES / "schedule_main_gamma.npy"))
    gamma, sched = info.schedule.gamma(t), info.schedule
    # the one intended change: the upper clip no longer stops a component with v < 1 at
    # gamma_noise + log v (docs/maths.md §2b); capped there, gamma is exactly as recorded
    old_upper = sched.gamma_noise + sched.log_v
    torch.testing.assert_close(torch.minimum(gamma, old_upper), want, rtol=0, atol=1e-9)
    assert (gamma >= want - 1e-9).all() and (gamma > want + 1).any()


def test_shipped_checkpoints_sample_as_before():
    from rgdiff_core import load_model, sample

    recorded = np.load(FIXTURES / "checkpoint_samples_main.npz")
    assert sorted(recorded.files) == sorted(p.stem for p in MODELS.glob("*.pt"))
    for stem in recorded.files:
        process, den = load_model(MODELS / f"{stem}.pt", softness=0.5)
        with torch.no_grad():
            x = sample(process, den, n=2, steps=12, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(x, torch.from_numpy(recorded[stem]), rtol=1e-4, atol=1e-4)
