"""The server's run queue (ui/run_queue.py): concurrent runs never use more torch threads than
the machine's cores; first come, first served; a place and a wait estimate for a queued run; a
closed or stopped session's queued runs are dropped."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from ui import run_queue
from ui.run_queue import QueueDropped, RunQueue


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16, 64])
def test_plan_never_oversubscribes(cores):
    for forced in (None, 1, 2, 5, 100):
        for workers, threads in (
            run_queue.plan(cores),
            run_queue.plan(cores, threads=forced),
            run_queue.plan(cores, workers=forced),
        ):
            assert workers >= 1 and threads >= 1
            assert workers * threads <= cores, (cores, forced, workers, threads)


def test_plan_leaves_a_core_to_the_server():
    assert run_queue.plan(1) == (1, 1)
    assert run_queue.plan(2) == (1, 1)
    assert run_queue.plan(4) == (3, 1)
    assert run_queue.plan(16) == (7, 2)
    assert run_queue.plan(2, workers=2) == (2, 1)  # forced: every core
    assert run_queue.plan(4, threads=2) == (1, 2)


@pytest.mark.parametrize("forced", [None, "all", "half"])
def test_concurrent_runs_never_set_more_torch_threads_than_cores(restore_threads, forced):
    """Six sessions at once on the machine's plan (default, or forced to use every core in
    one-thread or in two-thread workers): inside every run, (runs active) x (torch threads of
    the run's thread) stays within the usable cores, and every worker is used."""
    cores = run_queue.usable_cores()
    force = {None: None, "all": cores, "half": max(1, cores // 2)}[forced]
    workers, threads = run_queue.plan(cores, workers=force)
    queue = RunQueue(workers, threads)
    torch.set_num_threads(cores)  # what a fresh process would have
    active, peak, seen, lock = [0], [0], [], threading.Lock()
    a, b = torch.randn(64, 64), torch.randn(64, 64)

    def session(i: int) -> None:
        torch.ones(8).sum()  # this thread's OpenMP state exists before the run
        with queue.slot(f"s{i}", 0.05, poll_s=0.01):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            for _ in range(20):
                (a @ b).sum()
                with lock:
                    seen.append(active[0] * torch.get_num_threads())
            time.sleep(0.02)
            with lock:
                active[0] -= 1

    pool = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(60)
    assert len(seen) == 6 * 20
    assert max(seen) <= cores, (max(seen), cores, workers, threads)
    assert peak[0] == min(workers, 6)


def _hold(queue: RunQueue, session: str, estimate: float, started: list, release: threading.Event):
    def body():
        try:
            with queue.slot(session, estimate, poll_s=0.01):
                started.append(session)
                release.wait(30)
        except QueueDropped:
            started.append(f"dropped {session}")

    t = threading.Thread(target=body)
    t.start()
    return t


def _wait_until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_queue_order_place_wait_and_dropped_session():
    queue = RunQueue(cpu_workers=1, threads=1)
    started, go = [], {s: threading.Event() for s in "ABCD"}
    threads = [_hold(queue, "A", 10.0, started, go["A"])]
    _wait_until(lambda: started == ["A"])
    for s in "BCD":  # queued in this order behind A
        threads.append(_hold(queue, s, 4.0, started, go[s]))
        _wait_until(lambda s=s: queue.peek().queued == "BCD".index(s) + 1)
    tickets = list(queue._queued["cpu"])
    places = [queue.status(t) for t in tickets]
    assert [p.place for p in places] == [1, 2, 3]
    assert all(p.queued == 3 and p.running == 1 and p.workers == 1 for p in places)
    # A has ~10 s left; each run ahead adds its 4 s estimate
    assert [round(p.wait_s) for p in places] == [10, 14, 18]
    assert queue.drop_session("C") == 1  # C's tab closed
    assert [queue.status(t).place for t in (tickets[0], tickets[2])] == [1, 2]
    go["A"].set()
    # C's thread notes its drop whenever it wakes, before or after B starts: wait for B itself
    _wait_until(lambda: "B" in started)
    assert "D" not in started  # one worker: D waits for B
    go["B"].set()
    _wait_until(lambda: "D" in started)
    go["D"].set()
    for t in threads:
        t.join(10)
    assert started == ["A", "dropped C", "B", "D"] or started == ["A", "B", "dropped C", "D"]
    assert started.index("B") < started.index("D")
    assert queue.peek().queued == 0 and queue.running() == 0


def test_stop_while_queued_leaves_the_queue():
    """on_wait raising (Streamlit's stop or rerun exception) takes the run out of the queue,
    and a session whose tab closed (alive() False) is dropped."""
    queue = RunQueue(cpu_workers=1, threads=1)
    started, go = [], threading.Event()
    holder = _hold(queue, "A", 1.0, started, go)
    _wait_until(lambda: started == ["A"])

    def stop(_status):
        raise KeyboardInterrupt  # stands in for Streamlit's StopException

    with pytest.raises(KeyboardInterrupt):
        with queue.slot("B", 1.0, on_wait=stop, poll_s=0.01):
            pass
    with pytest.raises(QueueDropped):
        with queue.slot("C", 1.0, alive=lambda: False, poll_s=0.01):
            pass
    assert queue.peek().queued == 0
    go.set()
    holder.join(10)
    with queue.slot("D", 1.0, poll_s=0.01) as ticket:  # the worker is free again
        assert ticket.started_at is not None and ticket.waited_s < 1


def test_lanes_are_separate():
    queue = RunQueue(cpu_workers=1, threads=1, gpu_workers=1)
    started, go = [], threading.Event()
    holder = _hold(queue, "A", 1.0, started, go)
    _wait_until(lambda: started == ["A"])
    with queue.slot("B", 1.0, device="cuda", poll_s=0.01) as ticket:  # the GPU worker is free
        assert ticket.lane == "cuda" and queue.running("cuda") == 1
    go.set()
    holder.join(10)


def test_held_out_bound_waits_for_a_run_worker(monkeypatch):
    """Compare's held-out bits/dim holds one of the server's run workers, as a sampling run
    does: with the only worker busy it waits, and it runs once the worker is free."""
    from types import SimpleNamespace

    from rgdiff_core.specs import BasisSpec, DataSpec, PriorSpec, ProcessSpec
    from ui import held_out

    queue = RunQueue(cpu_workers=1, threads=torch.get_num_threads())
    monkeypatch.setattr(run_queue, "shared", lambda: queue)
    monkeypatch.setattr(held_out, "images", lambda d: torch.zeros(40, 1, 8, 8))
    running = []

    def fake_elbo(process, den, x, n_t, generator):
        running.append((queue.running(), len(x), n_t))
        return "bound"

    monkeypatch.setattr(held_out, "elbo", fake_elbo)
    # seed 9137: a key no other test caches
    spec = ProcessSpec(DataSpec("digits", 8, seed=9137), BasisSpec("dct"), PriorSpec("data"))
    started, go = [], threading.Event()
    holder = _hold(queue, "other session", 5.0, started, go)
    _wait_until(lambda: started == ["other session"])
    out = []
    worker = threading.Thread(
        target=lambda: out.append(
            held_out.bits_per_dim(spec, "gaussian_fit", SimpleNamespace(device="cpu"), None)
        )
    )
    worker.start()
    _wait_until(lambda: queue.peek().queued == 1)  # the bound is queued behind the run
    assert running == []
    go.set()
    holder.join(10)
    worker.join(10)
    assert out == ["bound"]
    assert running == [(1, held_out.N_LIKELIHOOD, held_out.N_T)]  # it held the worker
    assert queue.running() == 0 and queue.peek().queued == 0


def test_run_log_has_one_line_per_run_that_ran(monkeypatch, tmp_path):
    """RGDIFF_RUN_LOG: queued <= started <= ended per run, on the machine's monotonic clock;
    a run dropped before it started writes nothing; no variable, no file."""
    import json

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("RGDIFF_RUN_LOG", str(log))
    queue = RunQueue(cpu_workers=1, threads=torch.get_num_threads())
    before = time.monotonic()
    with queue.slot("a", 1.0):
        time.sleep(0.05)
    ticket = queue.submit("b", 1.0)
    queue.drop_session("b")
    queue.release(ticket)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 1
    (run,) = lines
    assert run["lane"] == "cpu"
    assert before <= run["queued"] <= run["started"] <= run["ended"] - 0.05 <= time.monotonic()
    monkeypatch.delenv("RGDIFF_RUN_LOG")
    with queue.slot("c", 1.0):
        pass
    assert len(log.read_text().splitlines()) == 1


def test_queued_page_resends_its_place_only_when_new_or_every_few_seconds(monkeypatch):
    """ui.runs.queued: a queued session polls twice a second (its tab may close), but sends
    the browser its place at once only when the place changes, else every STATUS_EVERY_S."""
    from ui import runs

    class FastPoll(RunQueue):
        def slot(self, *args, **kwargs):
            return super().slot(*args, **{**kwargs, "poll_s": 0.02})

    class Slot:
        def __init__(self):
            self.texts = []

        def info(self, text):
            self.texts.append(text)

        def empty(self):
            pass

    queue, shown = FastPoll(cpu_workers=1, threads=torch.get_num_threads()), Slot()
    monkeypatch.setattr(run_queue, "shared", lambda: queue)
    monkeypatch.setattr(runs.st, "empty", lambda: shown)
    monkeypatch.setattr(runs, "STATUS_EVERY_S", 0.3)
    started, go = [], threading.Event()
    holder = _hold(queue, "other", 5.0, started, go)
    _wait_until(lambda: started == ["other"])
    ran = []

    def session():
        with runs.queued("cpu", 1.0):
            ran.append(True)

    t = threading.Thread(target=session)
    t.start()
    _wait_until(lambda: queue.peek().queued == 1)
    time.sleep(1.0)  # about 50 polls
    go.set()
    holder.join(10)
    t.join(10)
    assert ran == [True]
    assert 2 <= len(shown.texts) <= 6, shown.texts  # 1 + one per 0.3 s, not one per poll
    assert all("Queued: place 1 of 1" in text for text in shown.texts)
