"""The README's library snippet runs as written and does what its comments say."""

import re
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_snippet(heading: str) -> dict:
    """Run the first python block after `heading` in the README; its variables."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
    return scope


def test_readme_library_snippet_runs():
    scope = run_snippet("## Library API")
    images = scope["images"]
    assert images.shape == (16, 1, 32, 32) and torch.isfinite(images).all()
    from rgdiff_core.terminal import L_T_TARGET, prior_term

    assert prior_term(scope["process"], scope["x"]) <= L_T_TARGET
    assert scope["net"].process is scope["net_process"]


def test_readme_load_model_snippet_runs():
    scope = run_snippet("## Training a model on a GPU")
    images = scope["images"]
    assert images.shape == (16, 1, 32, 32) and torch.isfinite(images).all()
    assert scope["process"].schedule.softness == 0.3
