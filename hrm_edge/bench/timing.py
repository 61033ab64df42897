"""Latency per puzzle from a run's batch wall times: the percentiles every table (solve, compare, bench) shows.

Conventions (stated once, used by every table): latency per puzzle is the batch time divided by the
puzzles in the batch (with `--batch 1` it is the plain latency), and its p50/p90/p99 are taken over
puzzles; throughput is puzzles / total time. The times themselves are recorded by the batch runner
(runtime/batches.py), which also says what a batch's time covers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hrm_edge.runtime.batches import RunRecord


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


def run_latency(rec: RunRecord) -> dict[str, float]:
    """Per-puzzle latency percentiles and throughput of one runtime's run (what solve and compare report)."""
    return latency_stats(rec.batch_seconds, rec.batch_sizes)


__all__ = ["latency_stats", "run_latency"]
