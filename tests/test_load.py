"""Many users at once (bench/bench_load.py): 8 concurrent browser sessions on one fresh real
server, in two waves, each on its own page with its own settings and a sampling run. Every
session completes, shows its own settings and gets its own samples, and the server's memory
after the second wave stays within a margin of the first. Also: every cache the app keeps is
bounded (max_entries), checked in the source."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_load():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
@pytest.mark.slow
def test_eight_concurrent_sessions_two_waves(artifacts_dir):
    bench = _bench_load()
    bench.SHOTS = artifacts_dir
    report = bench.run(sessions=8, waves=2, log_dir=artifacts_dir)
    (artifacts_dir / "load.json").write_text(json.dumps(report, indent=1))
    text = bench.summary(report)
    print(text)
    assert not report["problems"], text
    for wave in report["waves"]:
        assert wave["completed"] == 8, text
    assert report["rss_growth_mb"] <= bench.GROWTH_MB, text


def _decorator_calls(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for dec in node.decorator_list:
                yield node.name, dec


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(ROOT).as_posix()
        for p in [*ROOT.glob("ui/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]
    ),
)
def test_every_cache_is_bounded(path):
    """st.cache_resource / st.cache_data always with max_entries (or a ttl): the server's
    memory cannot grow with the number of distinct settings users try."""
    for name, dec in _decorator_calls(ROOT / path):
        target = dec.func if isinstance(dec, ast.Call) else dec
        text = ast.unparse(target)
        if text.endswith(("cache_resource", "cache_data", "lru_cache", "cache")):
            keywords = {k.arg for k in dec.keywords} if isinstance(dec, ast.Call) else set()
            assert keywords & {"max_entries", "ttl", "maxsize"}, f"{path}: {name} is unbounded"


def test_throughput_compares_each_count_with_the_lone_runs_around_it():
    """make load's verdict: each count against the mean of the unbroken blocks of lone runs
    just before and after it (bench/load_throughput.py); a count below BUDGET is a problem."""
    _bench_load()
    spec = importlib.util.spec_from_file_location(
        "load_throughput", ROOT / "bench" / "load_throughput.py"
    )
    lt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lt)

    def row(n, rate, done=None, server=None):
        return {
            "sessions": n,
            "completed": n if done is None else done,
            "image_steps_per_s": rate,
            "server_image_steps_per_s": rate if server is None else server,
            "image_steps_per_cpu_s": rate,
        }

    rows = [
        row(1, 100),
        row(1, 120),
        row(4, 80, server=99),
        row(1, 110),
        row(1, 90),
        row(8, 80),
        row(1, 90),
    ]
    assert [r["image_steps_per_s"] for r in lt._lone_neighbours(rows, 2)] == [120, 100, 110, 90]
    assert [r["image_steps_per_s"] for r in lt._lone_neighbours(rows, 5)] == [90, 110, 90]
    assert lt._lone_neighbours([row(4, 1)], 0) == []
    problems = lt.compare_with_lone(rows)
    # 4 sessions: 76 % in the browsers, 94 % on the server (the budget's figure)
    assert rows[2]["server_vs_one"] == round(99 / 105, 3) and rows[2]["vs_one"] == 0.762
    assert rows[5]["server_vs_one"] == round(80 / (290 / 3), 3) and rows[0]["vs_one"] is None
    assert problems == ["8 sessions: 83% of one session's throughput on the server (budget 90%)"]
    rows[2]["completed"] = 3
    assert "4 sessions: 3 completed" in lt.compare_with_lone(rows)
    rows[2]["server_image_steps_per_s"] = 0.0  # no run log
    assert "4 sessions: the server's run log has no figure" in lt.compare_with_lone(rows)
