"""Batching of ACT puzzles over a fixed number of slots: static (whole batches) or continuous (per segment).

Why continuous: with adaptive halting a static batch pays for its slowest puzzle, and rows that halted
early are still computed until the batch ends. The `step` graph restarts any row whose `halted` input
is set, so after every segment the puzzles that halted leave (logits, q values, segment count) and
waiting ones take the freed slots, restarted through `halted`. Every runtime does this through the
same `StepSession` (`run` / `logits` / `advance` / `restart`, runtime/base.py): PyTorch and ONNX
Runtime on the host, TensorRT with its carry resident on the device (only the entering rows' inputs
are copied over).

Why the answers are those of static batching: every layer acts on each row alone (attention within a
sample), and a row's halting reads only its own q values and segment count (`act.halt_mask` with
per-slot counters), so a puzzle runs the same segments and gives the same grid whichever puzzles
share the batch. Both schedulers keep the batch width at `slots` while work remains, so kernels see
the same shapes as a static batch of `slots` (tests/test_scheduler.py checks segments and grids on
every runtime and halting rule). Idle slots (an empty queue) run on whatever they last held and are
ignored.

`batch-mean` (the lite family's rule: the whole batch stops when the mean halting probability passes
the threshold) reads its batch company by definition, so no per-puzzle interleaving can keep its
answers. Continuous batching therefore runs it in cohorts: puzzles enter only when every slot is
free, the mean is over occupied slots (never idle ones), and the cohort leaves together: exactly a
static batch of the same puzzles, with no throughput gain.

Schedulers are driven by one thread (`step`); `submit`, `discard` and the counters may be called from
others (the HTTP service's event loop), so the queue sits behind a lock.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.act import halt_mask
from hrm_edge.runtime.base import ActResult, Runner, StepSession

SCHEDULES = ("static", "continuous")


@dataclass
class Puzzle:
    """One model input waiting for a slot; `tag` is the caller's handle (a job index, a request)."""

    tokens: np.ndarray  # (seq_len,) int
    puzzle_emb: np.ndarray | None = None  # (ndim,) float, None for families without puzzle vectors
    tag: Any = None
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class Finished:
    """A puzzle's answer, taken at the segment where it halted."""

    puzzle: Puzzle
    logits: np.ndarray  # (seq_len, vocab) float32
    q_halt: float
    q_continue: float
    steps: int  # segments run (1..max_steps)
    started: float  # perf_counter when it entered a slot
    finished: float  # perf_counter when it left


@dataclass
class SchedulerStats:
    """Counters since construction: what the slots did (for /metrics and the benchmark)."""

    segments: int = 0  # segment calls (static: every segment of every batch)
    slot_segments: int = 0  # segments x width
    busy_slot_segments: int = 0  # of those, slots holding a puzzle that had not halted yet
    puzzles: int = 0  # finished

    @property
    def occupancy(self) -> float | None:
        return self.busy_slot_segments / self.slot_segments if self.slot_segments else None


class Scheduler(ABC):
    """A queue of puzzles and `slots` places to run them; `step` does one unit of work."""

    def __init__(self, runner: Runner, slots: int, halt: str = "max") -> None:
        if slots < 1:
            raise HrmEdgeError(f"slots must be at least 1, got {slots}")
        runner.spec.check_halt(halt)
        self.runner, self.slots, self.halt = runner, int(slots), halt
        self.stats = SchedulerStats()
        self._queue: deque[Puzzle] = deque()
        self._lock = threading.Lock()

    # -- the queue (any thread) ------------------------------------------------------------------
    def submit(self, puzzles: Iterable[Puzzle]) -> None:
        with self._lock:
            self._queue.extend(puzzles)

    def discard(self, drop: Callable[[Puzzle], bool]) -> int:
        """Remove waiting puzzles for which `drop(p)` holds (a request that timed out); returns how many."""
        with self._lock:
            keep = [p for p in self._queue if not drop(p)]
            n = len(self._queue) - len(keep)
            self._queue = deque(keep)
        return n

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    @abstractmethod
    def busy(self) -> int:
        """Slots holding a puzzle now."""

    @property
    def idle(self) -> bool:
        """Nothing to do: no puzzle waits and none is in a slot."""
        return not self._queue and self.busy == 0

    def _take(self, n: int) -> list[Puzzle]:
        with self._lock:
            return [self._queue.popleft() for _ in range(min(n, len(self._queue)))]

    # -- the work (one thread) -------------------------------------------------------------------
    @abstractmethod
    def step(self) -> list[Finished]:
        """One unit of work (static: a whole batch; continuous: one segment); [] when idle."""

    def run(self, puzzles: Sequence[Puzzle]) -> list[Finished]:
        """Every puzzle to the end, answers in submission order (the offline path: `solve`)."""
        self.submit(puzzles)
        done: list[Finished] = []
        while not self.idle:
            done.extend(self.step())
        order = {id(p): i for i, p in enumerate(puzzles)}
        done.sort(key=lambda f: order[id(f.puzzle)])
        return done

    def close(self) -> None:
        return None


class StaticScheduler(Scheduler):
    """Whole batches: up to `slots` waiting puzzles run together until the last one halts (`run_act`)."""

    def __init__(self, runner: Runner, slots: int, halt: str = "max") -> None:
        super().__init__(runner, slots, halt)
        self._busy = 0

    @property
    def busy(self) -> int:
        return self._busy

    def step(self) -> list[Finished]:
        batch = self._take(self.slots)
        if not batch:
            return []
        self._busy = len(batch)
        t0 = time.perf_counter()
        try:
            tokens = np.stack([p.tokens for p in batch])
            pe = None if batch[0].puzzle_emb is None else np.stack([p.puzzle_emb for p in batch])
            res = self.runner.run_act(tokens, pe, halt=self.halt)
        finally:
            self._busy = 0
        t1 = time.perf_counter()
        width, steps = len(batch), int(res.steps.max())
        self.stats.segments += steps
        self.stats.slot_segments += steps * width
        self.stats.busy_slot_segments += int(res.steps.sum())
        self.stats.puzzles += width
        return [Finished(p, res.logits[i], float(res.q_halt[i]), float(res.q_continue[i]), int(res.steps[i]), t0, t1)
                for i, p in enumerate(batch)]


class ContinuousScheduler(Scheduler):
    """Slots refilled after every segment; one step session (width `slots`) lives as long as the scheduler."""

    def __init__(self, runner: Runner, slots: int, halt: str = "max") -> None:
        super().__init__(runner, slots, halt)
        if runner.act_mode != "step":
            raise HrmEdgeError(f"{runner.name}: continuous batching needs a `step` export (this is "
                               f"{runner.act_mode!r}: the graph runs every segment in one call); use the static "
                               "schedule or export with --act step")
        self.cohorts = halt == "batch-mean"  # see the module docstring
        self._session: StepSession | None = None
        self._slot: list[Puzzle | None] = [None] * self.slots
        self._steps = np.zeros(self.slots, np.int32)
        self._started = np.zeros(self.slots, np.float64)

    @property
    def busy(self) -> int:
        return sum(p is not None for p in self._slot)

    def _open(self) -> StepSession:
        spec = self.runner.spec
        tokens = np.zeros((self.slots, spec.seq_len), np.int32)
        pe = np.zeros((self.slots, spec.puzzle_emb_ndim), np.float32) if spec.puzzle_emb_ndim else None
        return self.runner.step_session(self.runner.step_feed(self.runner.act_feed(tokens, pe)))

    def _admit(self, session: StepSession) -> None:
        free = [i for i, p in enumerate(self._slot) if p is None]
        if not free or (self.cohorts and len(free) < self.slots):
            return
        entering = self._take(len(free))
        if not entering:
            return
        rows = np.asarray(free[:len(entering)], np.int64)
        tokens = np.stack([p.tokens for p in entering])
        ndim = self.runner.spec.puzzle_emb_ndim
        pe = np.stack([np.zeros(ndim, np.float32) if p.puzzle_emb is None else p.puzzle_emb for p in entering]) \
            if ndim else None
        session.restart(rows, tokens, pe)
        now = time.perf_counter()
        for r, p in zip(rows, entering):
            self._slot[r] = p
        self._steps[rows] = 0
        self._started[rows] = now

    def step(self) -> list[Finished]:
        if self._session is None:
            if self.idle:
                return []
            self._session = self._open()
        session = self._session
        self._admit(session)
        occ = np.flatnonzero([p is not None for p in self._slot])
        if occ.size == 0:
            return []
        qh, qc = session.run()
        spec = self.runner.spec
        self._steps[occ] += 1
        halts = halt_mask(self.halt, self._steps[occ], qh[occ], qc[occ], spec.max_steps, spec.min_halt_steps,
                          spec.halt_threshold, spec.adaptive_rule)
        rows = occ[np.asarray(halts, bool)]
        out: list[Finished] = []
        if rows.size:
            logits = np.array(session.logits(rows), dtype=np.float32)  # a copy: the session reuses its buffer
            now = time.perf_counter()
            for k, r in enumerate(rows):
                p = self._slot[r]
                assert p is not None
                out.append(Finished(p, logits[k], float(qh[r]), float(qc[r]), int(self._steps[r]),
                                    float(self._started[r]), now))
                self._slot[r] = None
        session.advance()
        self.stats.segments += 1
        self.stats.slot_segments += self.slots
        self.stats.busy_slot_segments += int(occ.size)
        self.stats.puzzles += len(out)
        return out


def make_scheduler(schedule: str, runner: Runner, slots: int, halt: str = "max") -> Scheduler:
    """`static` or `continuous` over an active runner."""
    if schedule == "static":
        return StaticScheduler(runner, slots, halt)
    if schedule == "continuous":
        return ContinuousScheduler(runner, slots, halt)
    raise HrmEdgeError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def run_scheduled(runner: Runner, tokens: np.ndarray, puzzle_emb: np.ndarray | None, *, slots: int,
                  halt: str = "max", schedule: str = "continuous") -> ActResult:
    """`run_act` for any number of puzzles through a scheduler: results in input order."""
    n = int(tokens.shape[0])
    puzzles = [Puzzle(tokens[i], None if puzzle_emb is None else puzzle_emb[i], i) for i in range(n)]
    done = make_scheduler(schedule, runner, slots, halt).run(puzzles)
    if not done:
        return ActResult(np.zeros((0, runner.spec.seq_len, runner.spec.vocab_size), np.float32),
                         np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
    return ActResult(np.stack([f.logits for f in done]), np.array([f.q_halt for f in done], np.float32),
                     np.array([f.q_continue for f in done], np.float32),
                     np.array([f.steps for f in done], np.int32))
