"""The benchmark's model whose halting spreads: how it is made (deterministic, no training, no download).

The demo model halts late and alike (mean ~3.6 of 4 segments on its tasks), so continuous batching has
little to free. This model has the demo's architecture (ACT v1, canvas 6, hidden 128, H/L 2 layers,
cycles 2/2) with 16 segments instead of 4, random weights (seed 0), a Q head with random weights
(N(0, 0.5^2), as the test kit does: the reference init, zero weight / bias -5, never halts) and puzzle
rows N(0, 0.5^2); its halt bias is then set by bisection so that, with adaptive halting, the benchmark's
own puzzles halt after 5 segments on average (at most half of the maximum 16: the issue's regime).
Random weights give meaningless grids; what is measured is scheduling, which depends only on when each
puzzle halts. The halting histogram is recorded in the results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAX_STEPS = 16
TARGET_MEAN = 5.0
SEED = 0


def _steps(margins: np.ndarray, bias: float, min_steps: int) -> np.ndarray:
    """Adaptive halting steps per puzzle for margins [n, MAX_STEPS] shifted by `bias`."""
    want = margins + bias > 0
    want[:, :min_steps - 1] = False
    want[:, -1] = True
    return want.argmax(1) + 1


def make_spread_model(path: Path, tasks: list, augment: int) -> tuple[Path, dict[str, Any]]:
    from hrm_edge.demo.asset import load_asset
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
    from hrm_edge.solve.solver import SolveOptions, plan_tasks

    demo = load_checkpoint(load_asset().checkpoint).model
    cfg = dataclasses.replace(demo.config, halt_max_steps=MAX_STEPS)
    model = build_model(cfg, seed=SEED).eval()
    g = torch.Generator().manual_seed(SEED + 7)
    with torch.no_grad():
        model.q_head.weight.copy_(torch.randn(model.q_head.weight.shape, generator=g) * 0.5)
        model.q_head.bias.zero_()
        model.puzzle_emb.weights.copy_(torch.randn(model.puzzle_emb.weights.shape, generator=g) * 0.5)
        plan = plan_tasks(tasks, SolveOptions(augment=augment), cfg.canvas, None)
        t = torch.from_numpy(np.stack([j.tokens for j in plan.jobs]).astype(np.int32))
        v = model.puzzle_vectors(torch.zeros(len(t), dtype=torch.long))  # no identifier index: the blank row
        z = model.empty_carry(len(t))
        margins = []
        for k in range(MAX_STEPS):
            _, qh, qc, *z = model.step(t, v, z[0], z[1], torch.full((len(t),), k == 0))
            margins.append((qh - qc).numpy())
    m = np.stack(margins, 1).astype(np.float64)
    lo, hi = -100.0, 100.0  # mean steps falls as the bias rises
    for _ in range(60):
        mid = (lo + hi) / 2
        if _steps(m, mid, model.min_halt_steps).mean() > TARGET_MEAN:
            lo = mid
        else:
            hi = mid
    with torch.no_grad():
        model.q_head.bias[0] = float(hi)
    steps = _steps(m, hi, model.min_halt_steps)
    save_checkpoint(path, model, train_state={"step": 0, "seed": SEED})
    recipe = {"how": (f"demo architecture with {MAX_STEPS} segments, random weights seed {SEED}, Q head and puzzle "
                      f"rows N(0, 0.5^2), halt bias {hi:.4f} chosen by bisection for a mean of {TARGET_MEAN} "
                      "adaptive segments on the benchmark puzzles (benchmarks/serve/spread_model.py)"),
              "max_steps": MAX_STEPS, "halt_bias": hi, "mean_steps": float(steps.mean()),
              "steps_hist": np.bincount(steps, minlength=MAX_STEPS + 1).tolist()}
    return path, recipe
