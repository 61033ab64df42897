"""Inputs to time runtimes on: random grids when no tasks are given (`bench` without TASKS)."""

from __future__ import annotations

import numpy as np

from hrm_edge.runtime.batches import Batch


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


__all__ = ["synthetic_batches"]
