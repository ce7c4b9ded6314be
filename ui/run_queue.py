"""One bounded run queue per server: every sampling-type run of every session goes through it.

Streamlit runs each session's script in its own thread of one process, so a module-level queue
(`shared()`) is seen by all sessions. Runs wait in first-come order per lane ("cpu", or "cuda"
with one worker per GPU) until a worker is free; at most `workers` runs of a lane execute at
once.

Threads. torch.set_num_threads is process-wide for threads started later, but OpenMP keeps the
value a thread already initialised with (measured: a thread that ran a torch op keeps its
count when another thread changes it). A per-run thread share that differs between runs is
therefore not possible in one process; the queue fixes one share for every run,

    threads = RGDIFF_RUN_THREADS, else max(1, cores // 8)
    workers = RGDIFF_RUN_WORKERS, else (cores - 1) // threads   (workers * threads < cores)

with cores = the CPUs this process may use (os.sched_getaffinity), and sets it both for the
process (new threads) and in each run's own thread when the run starts. One core is left to
the server's work outside the queue: drawing every session's results, the estimates' short
measurements, the other pages; and runs in one process also share Python's GIL between their
many small torch calls. On 2 cores: one worker of 1 thread (2 workers gave 74 % of one session's
throughput with 4 sessions on a loaded machine; 1 thread also avoids OpenMP threads spinning
against other processes: a 16 x 10-step network run took 21.5 s with 2 threads and 3.3 s with
1 under load). RGDIFF_RUN_WORKERS may use every core (workers * threads <= cores).

Waiting. A queued run polls every `poll_s` seconds; the caller's `on_wait(status)` shows the
place and the estimated wait (simulated from the estimates of the runs ahead and the time left
of the running ones) and may raise to leave the queue (Streamlit raises its stop/rerun
exception there). `alive()` False, or `drop_session`, removes a session's queued runs.

Run log. With RGDIFF_RUN_LOG set to a file path, every run that ran appends one JSON line when
it ends: lane, queued, started and ended (time.monotonic(), CLOCK_MONOTONIC, which other
processes on the machine share). `make load` reads it to time the server's own work.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ui.memory import busy, release_free_memory

POLL_S = 0.5  # how often a queued run refreshes its place and checks its session


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask; cpu_count where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def plan(
    cores: int | None = None, threads: int | None = None, workers: int | None = None
) -> tuple[int, int]:
    """(workers, threads per run) for the CPU lane: workers * threads <= cores - 1 (one core
    is left to the server's own work), or <= cores when `workers` is forced; either may be
    forced (an environment override), the other follows."""
    cores = usable_cores() if cores is None else max(1, int(cores))
    budget = max(1, cores - 1)
    if workers is not None:
        workers = max(1, min(int(workers), cores))
        share = max(1, (budget if workers <= budget else cores) // workers)
        return workers, share if threads is None else max(1, min(int(threads), share))
    threads = max(1, cores // 8) if threads is None else max(1, min(int(threads), budget))
    return max(1, budget // threads), threads


@dataclass
class Ticket:
    """One run in the queue: queued until `started` is set, then running until released."""

    id: int
    session: str
    lane: str
    estimate_s: float
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    dropped: bool = False

    @property
    def waited_s(self) -> float:
        end = self.started_at if self.started_at is not None else time.monotonic()
        return end - self.queued_at


@dataclass(frozen=True)
class QueueStatus:
    """Where a queued run stands: place 1 = next to start."""

    place: int
    queued: int  # runs waiting in this lane
    running: int
    workers: int
    wait_s: float  # estimated seconds until this run starts


class QueueDropped(Exception):
    """A queued run left the queue because its session closed or dropped its runs."""


class RunQueue:
    """First-come run queue with a fixed number of workers per lane (module docstring)."""

    def __init__(self, cpu_workers: int, threads: int, gpu_workers: int = 0):
        self.threads = int(threads)
        self.workers = {"cpu": int(cpu_workers), "cuda": max(1, int(gpu_workers))}
        self._lock = threading.Condition()
        self._queued: dict[str, list[Ticket]] = {lane: [] for lane in self.workers}
        self._running: dict[str, list[Ticket]] = {lane: [] for lane in self.workers}
        self._ids = itertools.count(1)

    @staticmethod
    def lane(device: str) -> str:
        return "cuda" if str(device).startswith("cuda") else "cpu"

    def pin_threads(self) -> None:
        """This thread's (and new threads') torch intra-op threads = the queue's share."""
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    # ---------------------------------------------------------------- bookkeeping

    def submit(self, session: str, estimate_s: float, device: str = "cpu") -> Ticket:
        ticket = Ticket(next(self._ids), session, self.lane(device), max(0.0, float(estimate_s)))
        with self._lock:
            self._queued[ticket.lane].append(ticket)
        return ticket

    def _try_start(self, ticket: Ticket) -> bool:
        queued, running = self._queued[ticket.lane], self._running[ticket.lane]
        if ticket.dropped:
            raise QueueDropped("the run was dropped from the queue")
        if queued and queued[0] is ticket and len(running) < self.workers[ticket.lane]:
            queued.pop(0)
            running.append(ticket)
            ticket.started_at = time.monotonic()
            return True
        return False

    def wait(self, ticket: Ticket, timeout: float) -> bool:
        """Up to `timeout` seconds for the ticket's turn; True once it runs (holds a worker)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._try_start(ticket):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def release(self, ticket: Ticket) -> None:
        """The run ended, or left the queue: free its worker or its place."""
        ended = time.monotonic()
        with self._lock:
            for table in (self._queued, self._running):
                if ticket in table[ticket.lane]:
                    table[ticket.lane].remove(ticket)
            self._lock.notify_all()
        if ticket.started_at is not None:
            log_run(ticket, ended)

    def drop_session(self, session: str) -> int:
        """Remove every queued run of a session (running ones finish); how many."""
        with self._lock:
            n = 0
            for queued in self._queued.values():
                for t in [t for t in queued if t.session == session]:
                    t.dropped = True
                    queued.remove(t)
                    n += 1
            self._lock.notify_all()
            return n

    def running(self, lane: str = "cpu") -> int:
        with self._lock:
            return len(self._running[lane])

    def _wait_after(self, lane: str, ahead: list[Ticket]) -> float:
        """Seconds until a run behind `ahead` starts (lock held): the workers' free times
        from the running runs' time left, then each run ahead taking the earliest free
        worker for its estimate."""
        now = time.monotonic()
        running = self._running[lane]
        free = [max(0.0, t.estimate_s - (now - t.started_at)) for t in running]
        free += [0.0] * max(0, self.workers[lane] - len(free))
        heapq.heapify(free)
        for t in ahead:
            heapq.heappush(free, heapq.heappop(free) + t.estimate_s)
        return free[0]

    def status(self, ticket: Ticket) -> QueueStatus:
        """Place and estimated wait of a queued run (place 0 once it runs)."""
        lane = ticket.lane
        with self._lock:
            queued = self._queued[lane]
            place = queued.index(ticket) + 1 if ticket in queued else 0
            wait = self._wait_after(lane, queued[: max(0, place - 1)]) if place else 0.0
            return QueueStatus(
                place, len(queued), len(self._running[lane]), self.workers[lane], wait
            )

    def peek(self, device: str = "cpu") -> QueueStatus:
        """The status a run submitted now would have."""
        lane = self.lane(device)
        with self._lock:
            queued = self._queued[lane]
            wait = self._wait_after(lane, queued)
            return QueueStatus(
                len(queued) + 1, len(queued), len(self._running[lane]), self.workers[lane], wait
            )

    # ---------------------------------------------------------------- one run

    @contextmanager
    def slot(
        self,
        session: str,
        estimate_s: float,
        device: str = "cpu",
        on_wait: Callable[[QueueStatus], None] | None = None,
        alive: Callable[[], bool] | None = None,
        poll_s: float = POLL_S,
    ) -> Iterator[Ticket]:
        """Hold a worker for the body: wait for the turn (calling on_wait each poll), pin the
        torch threads, run, release. Raises QueueDropped if the session went away while
        queued; whatever on_wait raises also leaves the queue."""
        ticket = self.submit(session, estimate_s, device)
        try:
            while not self.wait(ticket, poll_s):
                if alive is not None and not alive():
                    raise QueueDropped("the session closed while its run was queued")
                if on_wait is not None:
                    on_wait(self.status(ticket))
            self.pin_threads()
            with busy():  # no heap trim mid-run (ui/memory.py)
                yield ticket
        finally:
            self.release(ticket)
            release_free_memory()


def log_run(ticket: Ticket, ended: float) -> None:
    """One line in RGDIFF_RUN_LOG (module docstring), when it is set."""
    path = os.environ.get("RGDIFF_RUN_LOG")
    if not path:
        return
    line = {
        "lane": ticket.lane,
        "queued": ticket.queued_at,
        "started": ticket.started_at,
        "ended": ended,
    }
    with open(path, "a") as f:  # one short write per run
        f.write(json.dumps(line) + "\n")


_SHARED: RunQueue | None = None
_SHARED_LOCK = threading.Lock()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def shared() -> RunQueue:
    """The server's queue, sized on first use (module docstring); pins the torch threads."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            workers, threads = plan(
                threads=_env_int("RGDIFF_RUN_THREADS"), workers=_env_int("RGDIFF_RUN_WORKERS")
            )
            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
            _SHARED = RunQueue(workers, threads, gpus)
        queue = _SHARED
    queue.pin_threads()
    return queue
