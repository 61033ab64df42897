"""Inputs to time runtimes on: augmented test inputs of ARC tasks, or random grids when no tasks are given."""

from __future__ import annotations

import numpy as np

from hrm_edge.data.arc import ArcTask
from hrm_edge.runtime.batches import Batch
from hrm_edge.solve.runners import Runtime
from hrm_edge.solve.solver import SolveOptions, make_batches, plan_tasks


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


def task_batches(tasks: list[ArcTask], rt: Runtime, puzzles: int, batch: int) -> list[Batch]:
    """The first `puzzles` test inputs of `tasks` (identity augmentation, the runtime's puzzle rows) in batches."""
    canvas = rt.runner.spec.canvas
    plan = plan_tasks(tasks, SolveOptions(augment=1, batch=batch), canvas, rt.puzzles)
    plan.jobs = plan.jobs[:puzzles]
    idx = list(range(len(plan.jobs)))
    plan.batches = [idx[s:s + batch] for s in range(0, len(idx), batch)]
    return make_batches(plan, rt.puzzles).batches


__all__ = ["synthetic_batches", "task_batches"]
