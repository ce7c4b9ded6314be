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
