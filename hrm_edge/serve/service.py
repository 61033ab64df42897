"""The puzzle service behind the HTTP app: one model in memory, one scheduler thread, many requests.

Why a thread: a segment is a blocking call into PyTorch / ONNX Runtime / TensorRT, and the event loop
must keep accepting, validating and refusing requests while one runs. The loop side (`solve`) plans a
task with solve's own functions (the same augmentations, puzzle rows and voting as `hrm-edge solve`),
puts its puzzles in the scheduler's queue and awaits them; the worker thread steps the scheduler and
hands each finished puzzle back to its request through the loop (`call_soon_threadsafe`). Puzzles of
all requests interleave in the slots. A request that times out has its waiting puzzles discarded; its
puzzles already in slots finish and are dropped.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_edge.data.arc import validate_task
from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime.batches import RunRecord
from hrm_edge.runtime.scheduler import Finished, Puzzle, Scheduler, make_scheduler
from hrm_edge.solve.runners import Runtime
from hrm_edge.solve.solver import SolveOptions, decide, plan_tasks
from hrm_edge.solve.submission import grid_to_json

SERVE_HALT_MODES = ("max", "adaptive")  # batch-mean would make one client's answers depend on another's
TASK_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
WINDOW = 1000  # latencies kept for the percentiles
RATE_WINDOW_S = 60.0  # puzzles/s over the last minute


class RequestError(Exception):
    """A refused request: the HTTP status, a one-line reason, and extra headers (Retry-After)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


@dataclass(frozen=True)
class ServeOptions:
    slots: int = 8
    halt: str = "max"
    schedule: str = "continuous"
    augment: int = 8
    attempts: int = 2
    seed: int = 0
    max_queue: int = 256  # puzzles waiting for a slot (a task brings test inputs x augment of them)
    timeout: float = 120.0  # seconds a request may take before it is answered 504

    def check(self) -> None:
        if self.halt not in SERVE_HALT_MODES:
            raise HrmEdgeError(f"--halt must be one of {', '.join(SERVE_HALT_MODES)} for serve, got {self.halt!r} "
                               "(batch-mean would make one client's answers depend on another's puzzles)")
        for flag, v in (("--slots", self.slots), ("--augment", self.augment), ("--max-queue", self.max_queue),
                        ("--attempts", self.attempts)):
            if v < 1:
                raise HrmEdgeError(f"{flag} must be >= 1, got {v}")
        if not self.timeout > 0:
            raise HrmEdgeError(f"--timeout must be > 0 seconds, got {self.timeout}")


@dataclass(eq=False)
class _Request:
    """One POST /solve in flight: its plan, the answers back so far, the future the handler awaits."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    n: int
    done: dict[int, Finished] = field(default_factory=dict)
    cancelled: bool = False

    def deliver(self, job: int, f: Finished) -> None:  # on the event loop
        if self.cancelled or self.future.done():
            return
        self.done[job] = f
        if len(self.done) == self.n:
            self.future.set_result(None)


@dataclass
class Metrics:
    """What /metrics reports; written by the loop and the worker, read by the loop (GIL-atomic updates)."""

    started: float = field(default_factory=time.perf_counter)
    requests: dict[int, int] = field(default_factory=dict)  # by HTTP status
    puzzles: int = 0
    request_latency: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # seconds
    puzzle_latency: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # submit -> answer, seconds
    finished_at: deque = field(default_factory=lambda: deque(maxlen=100_000))  # perf_counter per puzzle

    totals: dict[str, float] = field(default_factory=lambda: {"request_s": 0.0, "requests": 0, "puzzle_s": 0.0})

    def count(self, status: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1

    def observe_request(self, seconds: float) -> None:
        self.request_latency.append(seconds)
        self.totals["request_s"] += seconds
        self.totals["requests"] += 1

    def observe_puzzle(self, seconds: float, now: float) -> None:
        self.puzzles += 1
        self.finished_at.append(now)
        self.puzzle_latency.append(seconds)
        self.totals["puzzle_s"] += seconds

    def rate(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        recent = [t for t in self.finished_at if t >= now - RATE_WINDOW_S]
        if not recent:
            return 0.0
        span = min(RATE_WINDOW_S, max(now - self.started, 1e-9))
        return len(recent) / span


class Service:
    """The model, the scheduler and its worker thread; `solve` is called on the event loop."""

    def __init__(self, runtime: Runtime, options: ServeOptions) -> None:
        options.check()
        runtime.runner.spec.check_halt(options.halt)
        self.runtime, self.options = runtime, options
        self.canvas = runtime.runner.spec.canvas
        self.metrics = Metrics()
        self.scheduler: Scheduler | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._inflight: set[_Request] = set()
        self.fatal: str | None = None  # the last runtime failure, for /health

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Activate the runner (the model loads here) and start the worker thread."""
        self.runtime.runner.__enter__()
        self.scheduler = make_scheduler(self.options.schedule, self.runtime.runner, self.options.slots,
                                        self.options.halt)
        self._thread = threading.Thread(target=self._work, name="hrm-edge-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish every puzzle already admitted, then stop the thread and free the runner."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.runtime.runner.is_active:
            self.runtime.runner.__exit__(None, None, None)

    def _work(self) -> None:
        sched = self.scheduler
        assert sched is not None
        while True:
            with self._wake:
                while sched.idle and not self._stopping:
                    self._wake.wait(0.5)
                if sched.idle and self._stopping:
                    return
            try:
                finished = sched.step()
            except Exception as exc:  # a runtime failure: answer every request 500, keep serving others
                self.fatal = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                sched.discard(lambda p: True)
                self.scheduler = sched = make_scheduler(self.options.schedule, self.runtime.runner,
                                                        self.options.slots, self.options.halt)
                for req in list(self._inflight):
                    req.loop.call_soon_threadsafe(_fail, req, self.fatal)
                continue
            now = time.perf_counter()
            for f in finished:
                req, job = f.puzzle.tag
                self.metrics.observe_puzzle(now - f.puzzle.submitted, now)
                req.loop.call_soon_threadsafe(req.deliver, job, f)

    # -- state for /health and /metrics ------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return self.scheduler.waiting if self.scheduler else 0

    @property
    def busy(self) -> int:
        return self.scheduler.busy if self.scheduler else 0

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained: waiting puzzles over the recent rate (1 at least)."""
        rate = self.metrics.rate()
        return max(1, math.ceil(self.waiting / rate)) if rate > 0 else 1

    # -- one request -------------------------------------------------------------------------------
    async def solve(self, task_id: str, obj: Any) -> dict[str, Any]:
        """Plan, queue, await and decide one task; raises RequestError for anything refused."""
        if self._stopping:
            raise RequestError(503, "the service is shutting down", {"Retry-After": "5"})
        if not TASK_ID.match(task_id):
            raise RequestError(400, f"task id {task_id[:80]!r} must be 1-64 characters of letters, digits, _ . -")
        task, errors = validate_task(task_id, obj, canvas=self.canvas)
        if task is None:
            raise RequestError(422, f"malformed task: {errors[0].message}"
                               + (f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""))
        o = self.options
        table = self.runtime.puzzles
        plan = plan_tasks([task], SolveOptions(augment=o.augment, attempts=o.attempts, halt=o.halt,
                                               batch=o.slots, seed=o.seed), self.canvas, table)
        if plan.errors:
            raise RequestError(422, plan.errors[0].message)
        n = len(plan.jobs)
        if n > o.max_queue:
            raise RequestError(413, f"this task needs {n} puzzles (test inputs x --augment {o.augment}), more than "
                                    f"the queue holds (--max-queue {o.max_queue})")
        ids, _ = table.ids_for([j.identifier for j in plan.jobs])
        vectors = table.vectors(ids) if table.used else None
        loop = asyncio.get_running_loop()
        req = _Request(loop, loop.create_future(), n)
        sched = self.scheduler
        assert sched is not None
        t0 = time.perf_counter()
        with self._wake:
            if sched.waiting + n > o.max_queue:
                raise RequestError(503, f"queue full ({sched.waiting} puzzles waiting, --max-queue {o.max_queue})",
                                   {"Retry-After": str(self.retry_after())})
            sched.submit(Puzzle(job.tokens.astype(np.int32), None if vectors is None else vectors[i], (req, i))
                         for i, job in enumerate(plan.jobs))
            self._inflight.add(req)
            self._wake.notify_all()
        try:
            await asyncio.wait_for(asyncio.shield(req.future), o.timeout)
        except asyncio.TimeoutError:
            req.cancelled = True
            sched.discard(lambda p: p.tag[0] is req)
            raise RequestError(504, f"not answered within --timeout {o.timeout:g} s "
                                    f"({len(req.done)} of {n} puzzles done)") from None
        finally:
            self._inflight.discard(req)
        elapsed = time.perf_counter() - t0
        self.metrics.observe_request(elapsed)
        return self._answer(plan, req, elapsed)

    def _answer(self, plan: Any, req: _Request, elapsed: float) -> dict[str, Any]:
        """solve's own `decide` over the answers laid out in the plan's batch order."""
        rec = RunRecord()
        for b in plan.batches:
            fs = [req.done[j] for j in b]
            rec.predictions.append(np.stack([f.logits.argmax(-1) for f in fs]).astype(np.uint8))
            rec.q_halt.append(np.array([f.q_halt for f in fs], np.float32))
            rec.steps.append(np.array([f.steps for f in fs], np.int32))
            rec.batch_sizes.append(len(fs))
            rec.batch_seconds.append(0.0)
        dec = decide(plan, rec)
        tests = []
        for a in dec.answers:
            js = [j for j, job in enumerate(plan.jobs) if job.test_index == a.test_index]
            tests.append({"candidates": a.n_candidates, "undecodable": a.n_undecodable,
                          "votes": [r.count for r in a.ranked[:plan.options.attempts]],
                          "steps": [req.done[j].steps for j in js], "correct": a.correct})
        fs = list(req.done.values())
        return {
            "task": plan.tasks[0].id,
            "attempts": [{f"attempt_{i + 1}": grid_to_json(g) for i, g in enumerate(a.attempts)} for a in dec.answers],
            "tests": tests,
            "puzzles": len(fs),
            "timing": {"total_ms": round(elapsed * 1000, 3),
                       "queued_ms_max": round(max(f.started - f.puzzle.submitted for f in fs) * 1000, 3),
                       "run_ms_max": round(max(f.finished - f.started for f in fs) * 1000, 3)},
        }


def _fail(req: _Request, why: str) -> None:
    if not req.future.done():
        req.future.set_exception(RequestError(500, f"inference failed: {why}"))
