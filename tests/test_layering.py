"""rgdiff_core is a library: it must never import streamlit (STYLE.md, imports flow one way)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "rgdiff_core"

# Import the package and every submodule, and name the first import that drags streamlit in.
PROBE = """
import importlib, pkgutil, sys

def leaked():
    return sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))

import rgdiff_core
if leaked():
    sys.exit("import rgdiff_core imported " + ", ".join(leaked()[:5]))
for info in pkgutil.walk_packages(rgdiff_core.__path__, "rgdiff_core."):
    importlib.import_module(info.name)
    if leaked():
        sys.exit("import " + info.name + " imported " + ", ".join(leaked()[:5]))
"""


def test_importing_core_does_not_import_streamlit():
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(proc.stderr or proc.stdout, pytrace=False)


def test_no_core_file_mentions_streamlit_import():
    pattern = re.compile(r"^\s*(import\s+streamlit\b|from\s+streamlit\b)", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted(CORE.rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not offenders, f"rgdiff_core must not import streamlit: {offenders}"


# ---------------------------------------------------------------- one builder, one place

SOURCES = [
    p
    for folder in ("rgdiff_core", "ui", "pages", "bench", "scripts")
    for p in sorted((ROOT / folder).rglob("*.py"))
] + [ROOT / "app.py"]


def call_sites(name: str) -> dict[str, int]:
    """Files outside tests/ that call `name(` (its own `def` is not a call), with counts."""
    pattern = re.compile(rf"(?<![\w.]){name}\(|\.{name}\(")
    sites = {}
    for path in SOURCES:
        text = re.sub(rf"def {name}\(", "", path.read_text(encoding="utf-8"))
        n = len(pattern.findall(text))
        if n:
            sites[str(path.relative_to(ROOT))] = n
    return sites


@pytest.mark.parametrize(
    "name, where",
    [
        ("soft_conditioning_schedule", {"rgdiff_core/specs.py": 1}),
        ("order_labels", {"rgdiff_core/specs.py": 1}),
        # the raw component moments: the builder's statistics and make_prior's own fit
        ("component_stats", {"rgdiff_core/specs.py": 1, "rgdiff_core/priors.py": 1}),
    ],
)
def test_settings_become_objects_in_one_place(name, where):
    assert call_sites(name) == where


def test_no_module_over_450_lines_and_no_page_over_160():
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / "rgdiff_core").rglob("*.py")) + sorted((ROOT / "ui").glob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    }
    pages = {
        p.name: n
        for p in sorted((ROOT / "pages").glob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 160
    }
    assert not long and not pages, (long, pages)


def test_no_file_cites_a_document_outside_the_repository():
    cited = re.compile(r"DESIGN(\.md| §|\b)")
    offenders = [
        str(p.relative_to(ROOT))
        for p in SOURCES + sorted((ROOT / "tests").glob("*.py")) + [ROOT / "README.md"]
        if p != Path(__file__) and cited.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders
    for path in SOURCES + sorted((ROOT / "tests").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for section in re.findall(r"docs/maths\.md (§\d+[a-z]?)", text):
            assert section in maths_sections(), (path.name, section)


def maths_sections() -> set[str]:
    text = (ROOT / "docs" / "maths.md").read_text(encoding="utf-8")
    return {"§" + m for m in re.findall(r"^#+ §(\d+[a-z]?) ", text, re.MULTILINE)}
