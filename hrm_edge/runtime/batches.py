"""Running puzzles through a runner in batches: the batch runner every room above uses (solve, compare, bench,
the trainer's ARC evaluation), beside the ACT driver it calls (base.py).

A *puzzle* is one model input: one augmented copy of one test input, with its puzzle vector. A batch's
time is the wall-clock of the whole ACT run (`Runner.run_act`: every segment plus the host loop), so the
host overhead of the `step` export is included. The first batch is run once more, untimed, before timing
starts (warm-up), unless disabled. Turning the recorded times into percentiles is bench's (bench/timing.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hrm_edge.runtime.base import Runner


@dataclass
class Batch:
    """One model call's inputs: tokens [b, seq] and puzzle vectors [b, ndim] (or None)."""

    tokens: np.ndarray
    puzzle_emb: np.ndarray | None
    jobs: Sequence[int] = ()  # indices of the puzzles (jobs) in this batch

    @property
    def size(self) -> int:
        return int(self.tokens.shape[0])


@dataclass
class RunRecord:
    """What one runtime produced for a list of batches, in batch order."""

    predictions: list[np.ndarray] = field(default_factory=list)  # [b, seq] argmax tokens
    q_halt: list[np.ndarray] = field(default_factory=list)
    steps: list[np.ndarray] = field(default_factory=list)
    logits: list[np.ndarray] | None = None  # kept only when asked (compare)
    batch_seconds: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(sum(self.batch_sizes))

    def flat(self, name: str) -> np.ndarray:
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else np.zeros(0)


def run_batches(runner: Runner, batches: Sequence[Batch], halt: str = "max", *, keep_logits: bool = False,
                warmup: bool = True, on_batch: Callable[[int], None] | None = None) -> RunRecord:
    """Run every batch through the shared ACT driver (the runner must be active)."""
    rec = RunRecord(logits=[] if keep_logits else None)
    if warmup and batches:
        runner.run_act(batches[0].tokens, batches[0].puzzle_emb, halt=halt)
    for b in batches:
        t0 = time.perf_counter()
        res = runner.run_act(b.tokens, b.puzzle_emb, halt=halt)
        dt = time.perf_counter() - t0
        rec.predictions.append(res.logits.argmax(-1).astype(np.uint8))
        rec.q_halt.append(np.asarray(res.q_halt, np.float32))
        rec.steps.append(np.asarray(res.steps, np.int32))
        if rec.logits is not None:
            rec.logits.append(np.asarray(res.logits, np.float32))
        rec.batch_seconds.append(dt)
        rec.batch_sizes.append(b.size)
        if on_batch is not None:
            on_batch(b.size)
    return rec


__all__ = ["Batch", "RunRecord", "run_batches"]
