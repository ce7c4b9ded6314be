"""The VP schedule's β_min and β_max controls: bound to the URL, used by the schedule the
pages build, and a β_max at or below β_min refused with a message."""

from __future__ import annotations

import pytest
import torch
from conftest import app_errors, open_app_page

from rgdiff_core.schedules import vp_schedule
from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ScheduleSpec
from ui import cache


def test_vp_beta_controls_set_the_schedule():
    at = open_app_page(
        "schedule", {"family": "vp", "bmin": 0.5, "bmax": 30.0, "gmin": -8.0}, {"size": 16}
    )
    assert not at.exception, app_errors(at)
    assert not at.error, [e.value for e in at.error]
    assert {"bmin", "bmax"} <= {w.key for w in at.slider}
    assert at.slider(key="bmin").value == 0.5 and at.slider(key="bmax").value == 30.0
    want = vp_schedule(0.5, 30.0, -8.0)
    shown = [c.value for c in at.caption if c.value.startswith("VP: β from 0.5 to 30")]
    assert shown == [f"VP: β from 0.5 to 30, so γ(1) = {float(want.gamma(1.0)):.1f}."]
    spec = ScheduleSpec(family="vp", gamma_min=-8.0, beta_min=0.5, beta_max=30.0)
    info = cache.schedule(DataSpec(size=16), BasisSpec(), PriorSpec(), spec)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(info.schedule.gamma(t), want.gamma(t))
    assert "β 0.5 → 30" in spec.label()


@pytest.mark.parametrize("bmin,bmax", [(5.0, 5.0), (5.0, 1.0)])
def test_vp_beta_max_not_above_beta_min_says_what_to_change(bmin, bmax):
    at = open_app_page("schedule", {"family": "vp", "bmin": bmin, "bmax": bmax}, {"size": 16})
    assert not at.exception, app_errors(at)
    assert [e.value for e in at.error] == ["β_max must exceed β_min: raise β_max or lower β_min."]


def test_vp_beta_controls_on_the_b_process_of_forward_noising():
    at = open_app_page(
        "noising", {"ab": True, "b_family": "vp", "b_bmin": 1.0, "b_bmax": 10.0}, {"size": 16}
    )
    assert not at.exception, app_errors(at)
    assert not at.error, [e.value for e in at.error]
    assert at.slider(key="b_bmin").value == 1.0 and at.slider(key="b_bmax").value == 10.0
