"""Latency and agreement measurements shared by `solve`, `compare` and `bench`.

Conventions (stated once, used by every table):
- a *puzzle* is one model input: one augmented copy of one test input, with its puzzle vector;
- a batch's time is the wall-clock of the whole ACT run (`Runner.run_act`: every segment plus the
  host loop), so the host overhead of the `step` export is included;
- latency per puzzle is the batch time divided by the puzzles in the batch (with `--batch 1` it is
  the plain latency), and its p50/p90/p99 are taken over puzzles; throughput is puzzles / total
  time. The first batch is run once more, untimed, before timing starts (warm-up), unless disabled.
- logit deltas are |runtime - torch| over every logit of every puzzle (fp32 on both sides).
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


def latency_stats(batch_seconds: Sequence[float], batch_sizes: Sequence[int]) -> dict[str, float]:
    """Per-puzzle latency percentiles (ms) and throughput from batch wall times."""
    secs = np.asarray(batch_seconds, np.float64)
    sizes = np.asarray(batch_sizes, np.int64)
    if secs.size == 0 or sizes.sum() == 0:
        return {"puzzles": 0, "batches": 0}
    per = np.repeat(secs / np.maximum(sizes, 1), sizes) * 1000.0
    total = float(secs.sum())
    return {
        "puzzles": int(sizes.sum()), "batches": int(secs.size), "total_s": total,
        "p50_ms": float(np.percentile(per, 50)), "p90_ms": float(np.percentile(per, 90)),
        "p99_ms": float(np.percentile(per, 99)), "mean_ms": float(per.mean()),
        "batch_p50_ms": float(np.percentile(secs * 1000.0, 50)),
        "puzzles_per_s": float(sizes.sum() / total) if total > 0 else float("inf"),
    }


def logit_deltas(ref: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> dict[str, float]:
    """max and mean |other - ref| over every logit (batches must line up)."""
    mx, total, count = 0.0, 0.0, 0
    for a, b in zip(ref, other, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"logit shapes differ: {a.shape} vs {b.shape}")
        d = np.abs(b.astype(np.float64) - a.astype(np.float64))
        mx = max(mx, float(d.max()) if d.size else 0.0)
        total += float(d.sum())
        count += d.size
    return {"max_abs": mx, "mean_abs": total / count if count else 0.0}


def percent(num: int | float, den: int | float) -> float | None:
    return None if not den else 100.0 * float(num) / float(den)


def synthetic_batches(n: int, batch: int, canvas: int, puzzle_ndim: int, seed: int = 0) -> list[Batch]:
    """n random grids (random shapes and colours) as encoded model inputs, for `bench` without tasks."""
    from hrm_edge.data.tokens import encode_batch

    rng = np.random.default_rng(seed)
    grids = []
    for _ in range(n):
        h, w = (int(x) for x in rng.integers(1, canvas + 1, size=2))
        grids.append(rng.integers(0, 10, size=(h, w)).astype(np.uint8))
    toks = encode_batch(grids, canvas).astype(np.int32)
    out = []
    for s in range(0, n, batch):
        t = toks[s:s + batch]
        pe = rng.normal(0, 0.02, size=(t.shape[0], puzzle_ndim)).astype(np.float32) if puzzle_ndim else None
        out.append(Batch(t, pe, tuple(range(s, s + t.shape[0]))))
    return out
