"""Shared fixtures for tests that drive the real app.

`streamlit_server` starts `streamlit run app.py` once per session on a free port and yields its
base URL; `browser` is one headless Debian chromium per session; `browser_page` is a fresh page
(own context) per test. Page tests combine them:

    def test_something(streamlit_server, browser_page):
        browser_page.goto(streamlit_server + "/some_page")
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

# One intra-op thread: the suite's tensors are small, and OpenMP threads spin badly when the
# Streamlit server or another process shares the two cores (measured 17x slower per op).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SERVER_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _log_tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no server log)"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def streamlit_server(artifacts_dir: Path) -> Iterator[str]:
    """Base URL (no trailing slash) of a real Streamlit server running app.py."""
    port = _free_port()
    log_path = artifacts_dir / "streamlit-server.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.address", "127.0.0.1",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log_path, "w") as log:
        # Own session, so teardown can end the server and anything it spawned, and nothing else.
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not _healthy(base_url + "/_stcore/health"):
            if proc.poll() is not None:
                pytest.fail(
                    f"streamlit exited with code {proc.returncode} before becoming healthy:\n"
                    + _log_tail(log_path)
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit not healthy on {base_url} after {SERVER_START_TIMEOUT_S:.0f}s:\n"
                    + _log_tail(log_path)
                )
            time.sleep(0.25)
        yield base_url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="session")
def browser():
    """One headless Debian chromium for the whole session."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium "
            "(apt-get install -y chromium, as root)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(browser):
    """A fresh page in its own context; 30 s default timeout for waits."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


# ---------------------------------------------------------------- AppTest helpers

APP = ROOT / "app.py"
APPTEST_TIMEOUT_S = 120


def open_app_page(page: str | None, query: dict | None = None, sidebar: dict | None = None):
    """A fresh AppTest of app.py showing `page` (a key of ui.state.PAGE_FILES; None = home),
    as if opened from a link: sidebar settings seed on the first run, page settings when the
    page is opened. Values are encoded as Streamlit writes them into the URL."""
    from streamlit.testing.v1 import AppTest

    from ui import state

    at = AppTest.from_file(str(APP), default_timeout=APPTEST_TIMEOUT_S)
    at.query_params = state.query_params_all(sidebar or {})
    at.run()
    if page is not None:
        at.query_params = state.query_params_all({**(sidebar or {}), **(query or {})})
        at.switch_page(state.PAGE_FILES[page])
        at.run()
    return at


@pytest.fixture
def navigation_mode(monkeypatch):
    """Run every AppTest run through app.py's st.navigation, as a real server does after its
    first session (AppTest resets Streamlit's legacy pages/ flag on every run, which makes
    ui.sidebar.data_spec rerun the script, and a rerun drops button clicks)."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", patched)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """An empty folder the app takes for assets/models/ (its checkpoints)."""
    from ui import denoiser_choice

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(denoiser_choice, "MODELS_DIR", folder)
    return folder


def app_errors(at) -> list[str]:
    """Exceptions shown by the app, with the tail of their stack traces."""
    return [f"{e.value}\n" + "\n".join(e.stack_trace[-6:]) for e in at.exception]


@pytest.fixture
def open_page():
    return open_app_page
