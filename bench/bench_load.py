"""Many users at once: concurrent browser sessions on one real server.

Starts `streamlit run app.py` on a free port and drives SESSIONS headless Debian chromium
contexts (Playwright, async) at the same time, in two waves. Each session opens one page with
its own settings in the URL (seed, softness, basis), checks the page shows them, then opens
Sampling with its own seed and runs a small sampling (16 x 16, 20 steps, batch 4) and reads
back the sample image. Sessions 0 and 1 share their settings; every other pair differs.

Checks: every session completes with no exception on screen; each shows its own seed and
softness; sessions with equal settings get identical samples and sessions with different seeds
different ones (no session sees another's results); the server's RSS after the second wave
stays within GROWTH_MB of the first (caches are bounded; sessions are released: the server runs
with a short server.disconnectedSessionTTL so closed sessions go within the measurement).

    python bench/bench_load.py [--sessions 8] [--waves 2]    # the figures; exit 1 on a failure

Figures: sessions held at once, peak server RSS (VmHWM), RSS after each wave, the slowest
session's time. tests/test_load.py runs the same code.

Then (--throughput 1,4,8, as `make load` does) the aggregate throughput of network sampling
with 1, 4 and 8 sessions at once on a second fresh server, against its budget: see
bench/load_throughput.py. `--sessions 0` skips the waves.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]
SESSION_TTL_S = 2  # server.disconnectedSessionTTL for the measured server
TRIM_PERIOD_S = 5  # ui.memory.TRIM_PERIOD_S: the server returns freed heap pages this often
GROWTH_MB = 150.0  # allowed RSS growth from the first wave to the second
SHOTS = ROOT / "test-artifacts"  # screenshots of failed sessions
TIMEOUT_MS = 240_000  # one wait in a session (2 cores, 8 browsers and the server)
PAGES = (
    ("schedule_designer", "Schedule designer"),
    ("forward_noising", "Forward noising"),
    ("basis_prior", "Basis & prior"),
    ("conditioning", "Conditioning"),
)
SOFTNESS = ("0.3", "1", "3", "0.1", "10", "0.5", "2", "0.2", "5", "0.7", "20", "0.15")
BASES = ("dct", "wavelet", "pixel", "fourier")


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    log_path: Path,
    ttl_s: int = SESSION_TTL_S,
    cores: set[int] | None = None,
    env_extra: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, str]:
    """A fresh server on a free port (on `cores` only, when given; `env_extra` added to its
    environment); (process, base URL)."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.disconnectedSessionTTL",
        str(ttl_s),
    ]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        **(env_extra or {}),
    }
    log = open(log_path, "w")  # lives as long as the server
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.25)
    stop_server(proc)
    raise RuntimeError(f"streamlit not healthy after 90 s; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak since start) of a process, in MB (psutil not needed)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


class RssSampler(threading.Thread):
    """Samples a process's RSS every `period` seconds; .peak holds the largest."""

    def __init__(self, pid: int, period: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.period, self.peak, self.samples = pid, period, 0.0, []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                rss = memory_mb(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            self.halt.wait(self.period)


# ---------------------------------------------------------------- one session


@dataclass
class Spec:
    index: int
    page: str
    title: str
    seed: int
    soft: str
    basis: str

    def query(self, **extra) -> str:
        params = {"size": 16, "seed": self.seed, "soft": self.soft, **extra}
        return "&".join(f"{k}={v}" for k, v in params.items())


@dataclass
class Outcome:
    index: int
    page: str
    seed: int
    soft: str
    seconds: float = 0.0
    ok: bool = False
    sample_sha: str = ""
    problems: list = field(default_factory=list)


def specs(n: int, wave: int) -> list[Spec]:
    out = []
    for i in range(n):
        k = 0 if i == 1 else i  # sessions 0 and 1 share their settings
        page, title = PAGES[i % len(PAGES)]
        out.append(
            Spec(
                i,
                page,
                title,
                seed=1000 * wave + 7 * k,
                soft=SOFTNESS[k % 12],
                basis=BASES[k % len(BASES)],
            )
        )
    return out


async def wait_idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms
    )
    await page.wait_for_timeout(300)


async def no_errors(page, where: str, problems: list) -> None:
    if await page.locator('[data-testid="stException"]').count():
        problems.append(f"{where}: exception on screen")
    if await page.get_by_text("Traceback").count():
        problems.append(f"{where}: traceback on screen")


SEED_INPUT = 'input[aria-label="Seed"]'


async def shows_seed(page, seed: int, where: str, problems: list) -> None:
    """The sidebar's seed becomes this session's (a fresh server's first run of a page may
    rerun once, so the value is awaited, not read once)."""
    try:
        await page.wait_for_function(
            f"() => {{ const e = document.querySelector('{SEED_INPUT}');"
            f" return e && Number(e.value) === {seed}; }}",
            timeout=60_000,
        )
    except Exception:
        shown = await page.locator(SEED_INPUT).first.input_value(timeout=5_000)
        problems.append(f"{where}: shows seed {shown}, not its own {seed}")


async def shows_text(page, text: str, where: str, problems: list) -> None:
    try:
        await page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
    except Exception:
        problems.append(f"{where}: does not show {text!r}")


async def session(browser, url: str, spec: Spec, out: Outcome) -> None:
    """Own context (own cookies, own Streamlit session); raises nothing, records problems."""
    start = time.perf_counter()
    context = await browser.new_context(viewport={"width": 1200, "height": 1600})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    try:
        # 1. a page with this session's settings
        extra = {"basis": spec.basis, "family": "soft", "clip": "true"}
        if spec.page == "conditioning":
            extra = {"task": "low_pass", "basis": "dct", "steps": 20, "cn": 2}
        await page.goto(f"{url}/{spec.page}?{spec.query(**extra)}")
        await page.get_by_role("heading", name=spec.title).first.wait_for(state="visible")
        await wait_idle(page)
        await shows_seed(page, spec.seed, spec.page, out.problems)
        if spec.page in ("schedule_designer", "forward_noising"):
            await shows_text(page, f"s = {spec.soft}, clip", spec.page, out.problems)
        await wait_idle(page)
        await no_errors(page, spec.page, out.problems)
        # 2. a sampling run with this session's seed
        query = spec.query(steps=20, batch=4, basis="dct", order="scale")
        await page.goto(f"{url}/sampling?{query}")
        await page.get_by_role("heading", name="Sampling").first.wait_for(state="visible")
        await wait_idle(page)
        await page.get_by_role("button", name="Run", exact=True).click()
        samples = page.locator('[data-testid="stImage"]').filter(has_text="4 of 4 samples")
        await samples.first.wait_for(state="visible")
        await wait_idle(page)
        await no_errors(page, "sampling", out.problems)
        await shows_seed(page, spec.seed, "sampling", out.problems)
        await shows_text(page, "step 20 of 20", "sampling", out.problems)
        src = await samples.first.locator("img").get_attribute("src")
        body = await (await page.request.get(src if src.startswith("http") else url + src)).body()
        out.sample_sha = hashlib.sha256(body).hexdigest()[:16]
        out.ok = not out.problems
    except Exception as err:  # a timeout or a missing element: this session failed
        out.problems.append(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")
        try:
            shot = SHOTS / f"load-failed-session-{spec.index}-seed-{spec.seed}.png"
            await page.screenshot(path=str(shot), full_page=True, timeout=30_000)
        except Exception:  # the screenshot is a courtesy
            pass
    finally:
        out.seconds = time.perf_counter() - start
        await context.close()


async def wave(browser, url: str, batch: list[Spec]) -> list[Outcome]:
    outcomes = [Outcome(s.index, s.page, s.seed, s.soft) for s in batch]
    await asyncio.gather(
        *(session(browser, url, s, o) for s, o in zip(batch, outcomes, strict=True))
    )
    return outcomes


def isolation_problems(outcomes: list[Outcome]) -> list[str]:
    """Equal settings -> equal samples; different seeds -> different samples."""
    out = []
    done = [o for o in outcomes if o.sample_sha]
    for a in done:
        for b in done:
            if a.index >= b.index:
                continue
            same = (a.seed, a.soft) == (b.seed, b.soft)
            if same and a.sample_sha != b.sample_sha:
                out.append(f"sessions {a.index} and {b.index}: same settings, other samples")
            if not same and a.seed != b.seed and a.sample_sha == b.sample_sha:
                out.append(f"sessions {a.index} and {b.index}: other seeds, same samples")
    return out


# ---------------------------------------------------------------- the whole run


def run(sessions: int = 8, waves: int = 2, log_dir: Path | None = None) -> dict:
    """Start a server, run the waves, stop it; returns the figures and any problems."""
    from playwright.async_api import async_playwright

    log_dir = log_dir or ROOT / "test-artifacts"
    log_dir.mkdir(exist_ok=True)
    proc, url = start_server(log_dir / "load-server.log")
    sampler = RssSampler(proc.pid)
    sampler.start()
    report: dict = {"sessions": sessions, "waves": [], "problems": []}

    async def drive():
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for w in range(waves):
                    t0 = time.perf_counter()
                    outcomes = await wave(browser, url, specs(sessions, w))
                    wall = time.perf_counter() - t0
                    # closed sessions are released, then the server's trimmer returns what
                    # they freed (ui/memory.py) before RSS is read
                    await asyncio.sleep(SESSION_TTL_S + 3 + TRIM_PERIOD_S + 1)
                    mem = memory_mb(proc.pid)
                    report["waves"].append(
                        {
                            "wave": w + 1,
                            "wall_s": round(wall, 1),
                            "completed": sum(o.ok for o in outcomes),
                            "slowest_s": round(max(o.seconds for o in outcomes), 1),
                            "rss_after_mb": round(mem["VmRSS"], 1),
                            "sessions": [asdict(o) for o in outcomes],
                        }
                    )
                    for o in outcomes:
                        report["problems"] += [
                            f"wave {w + 1} session {o.index}: {p}" for p in o.problems
                        ]
                    report["problems"] += [
                        f"wave {w + 1}: {p}" for p in isolation_problems(outcomes)
                    ]
            finally:
                await browser.close()

    def in_thread():
        # its own thread: no event loop of the caller's (pytest's sync Playwright) is running
        try:
            asyncio.run(drive())
        except BaseException as err:  # handed to the caller
            errors.append(err)

    errors: list[BaseException] = []
    try:
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
        if errors:
            raise errors[0]
        report["peak_rss_mb"] = round(max(memory_mb(proc.pid)["VmHWM"], sampler.peak), 1)
    finally:
        sampler.halt.set()
        stop_server(proc)
    rss = [w["rss_after_mb"] for w in report["waves"]]
    report["rss_growth_mb"] = round(rss[-1] - rss[0], 1) if len(rss) > 1 else 0.0
    if len(rss) > 1 and report["rss_growth_mb"] > GROWTH_MB:
        report["problems"].append(
            f"server RSS grew {report['rss_growth_mb']} MB from wave 1 to wave {len(rss)} "
            f"(allowed {GROWTH_MB:g} MB)"
        )
    report["slowest_session_s"] = max(w["slowest_s"] for w in report["waves"])
    return report


def summary(report: dict) -> str:
    lines = [f"sessions held at once: {report['sessions']} (x {len(report['waves'])} waves)"]
    for w in report["waves"]:
        lines.append(
            f"wave {w['wave']}: {w['completed']}/{report['sessions']} completed in "
            f"{w['wall_s']} s, slowest session {w['slowest_s']} s, server RSS after "
            f"{w['rss_after_mb']} MB"
        )
    lines.append(
        f"peak server RSS: {report['peak_rss_mb']} MB; growth wave 1 -> last: "
        f"{report['rss_growth_mb']} MB (allowed {GROWTH_MB:g})"
    )
    lines.append(f"slowest session: {report['slowest_session_s']} s")
    lines += [f"PROBLEM: {p}" for p in report["problems"]]
    return "\n".join(lines)


def main() -> int:
    try:
        import playwright  # noqa: F401 - a dev requirement
    except ImportError:
        print("bench_load skipped: playwright is not installed (make venv-dev)")
        return 0
    if not Path(CHROMIUM).exists():
        print(f"bench_load skipped: {CHROMIUM} is missing (make chromium)")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--throughput",
        default="",
        help="session counts of the throughput measurement, e.g. 1,4,8 (empty: none)",
    )
    parser.add_argument(
        "--throughput-shared-cores",
        action="store_true",
        help="throughput with the browsers on the server's cores (default: their own core)",
    )
    args = parser.parse_args()
    report = run(args.sessions, args.waves) if args.sessions > 0 else {"problems": []}
    if args.sessions > 0:
        print(summary(report), flush=True)
    if args.throughput:
        import load_throughput

        counts = tuple(int(n) for n in args.throughput.split(","))
        split = not args.throughput_shared_cores
        report["throughput"] = load_throughput.run(counts, split=split)
        print(load_throughput.summary(report["throughput"]))
        report["problems"] += report["throughput"]["problems"]
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
