"""A kit model whose adaptive halting spreads over the segments on the kit's REAL ARC tasks.

The kit's `tiny_model` centres its halting on random tokens; on real tasks (mostly background) every
puzzle then halts at segment 1, and a scheduler test would never see slots freed at different times.
Here the Q head's halt bias is re-centred on the tasks' own augmented inputs: 30% of them are past
the halting point at segment 1, the rest halt later or run every segment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import tiny_model

from hrm_edge.model.act import halt_margin


def spread_checkpoint(path: Path, tokens: np.ndarray) -> Path:
    """`tiny` (ACT v1, 10x10) re-centred on `tokens` (blank puzzle rows), saved as a native checkpoint."""
    from hrm_edge.model.checkpoint import save_checkpoint

    model = tiny_model("tiny")
    t = torch.from_numpy(np.asarray(tokens, np.int32))
    with torch.no_grad():
        v = model.puzzle_vectors(torch.zeros(len(t), dtype=torch.long))
        z = model.empty_carry(len(t))
        margins = []
        for k in range(model.config.max_steps - 1):
            _, qh, qc, *z = model.step(t, v, z[0], z[1], torch.full((len(t),), k == 0))
            margins.append(halt_margin(qh, qc, model.adaptive_rule))
        model.q_head.bias[0] -= torch.quantile(margins[0], 0.7)
    return save_checkpoint(path, model, train_state={"step": 0, "seed": 0})


def spread_for_tasks(path: Path, tasks: list, augment: int) -> Path:
    """`spread_checkpoint` on the puzzles `solve --augment N` makes of these tasks (no puzzle table)."""
    from hrm_edge.solve.solver import SolveOptions, plan_tasks

    plan = plan_tasks(tasks, SolveOptions(augment=augment), 10, None)
    return spread_checkpoint(path, np.stack([j.tokens for j in plan.jobs]))
