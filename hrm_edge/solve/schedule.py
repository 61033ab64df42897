"""`solve --schedule static|continuous`: a plan's batches through either scheduler, as one `RunRecord`.

`decide` reads a `RunRecord` in the plan's batch order, so the continuous scheduler's answers (which
leave in halting order) are put back into that layout: the rest of `solve` does not know how the
puzzles were scheduled. Static is `run_batches` itself. Continuous has no per-batch wall time, so each
batch is credited the run's wall time in proportion to its puzzles: totals and puzzles/s are exact,
per-puzzle latency percentiles become the mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime.base import Runner
from hrm_edge.runtime.batches import Batch, RunRecord, run_batches
from hrm_edge.runtime.scheduler import SCHEDULES, ContinuousScheduler, Puzzle


def run_batches_scheduled(runner: Runner, batches: Sequence[Batch], halt: str = "max", *,
                          schedule: str = "static", slots: int | None = None, keep_logits: bool = False,
                          warmup: bool = True, on_batch: Callable[[int], None] | None = None) -> RunRecord:
    """`run_batches` (static) or the continuous scheduler over the same puzzles; `slots` defaults to the
    largest batch (equal slots: the plan's `--batch`). `on_batch(n)` is told of every n puzzles finished."""
    if schedule not in SCHEDULES:
        raise HrmEdgeError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "static":
        return run_batches(runner, batches, halt, keep_logits=keep_logits, warmup=warmup, on_batch=on_batch)
    rec = RunRecord(logits=[] if keep_logits else None)
    if not batches:
        return rec
    width = slots or max(b.size for b in batches)
    sched = ContinuousScheduler(runner, width, halt)
    if warmup:
        runner.run_act(batches[0].tokens, batches[0].puzzle_emb, halt=halt)
    puzzles = [Puzzle(b.tokens[i], None if b.puzzle_emb is None else b.puzzle_emb[i], (k, i))
               for k, b in enumerate(batches) for i in range(b.size)]
    sched.submit(puzzles)
    done = {}
    t0 = time.perf_counter()
    while not sched.idle:
        out = sched.step()
        for f in out:
            done[f.puzzle.tag] = f
        if out and on_batch is not None:
            on_batch(len(out))
    total = time.perf_counter() - t0
    n = sum(b.size for b in batches)
    for k, b in enumerate(batches):
        fs = [done[(k, i)] for i in range(b.size)]
        logits = np.stack([f.logits for f in fs]) if fs else np.zeros((0,), np.float32)
        rec.predictions.append(logits.argmax(-1).astype(np.uint8) if fs else np.zeros((0, 0), np.uint8))
        rec.q_halt.append(np.array([f.q_halt for f in fs], np.float32))
        rec.steps.append(np.array([f.steps for f in fs], np.int32))
        if rec.logits is not None:
            rec.logits.append(logits.astype(np.float32))
        rec.batch_seconds.append(total * b.size / n if n else 0.0)
        rec.batch_sizes.append(b.size)
    return rec
