"""Helpers shared by the export tests (tiny models whose halting actually varies), plus their own checks.

The test models are the `tiny` / `tiny-lite` / `tiny-trm` presets on a 10x10 canvas (100 tokens instead of 900:
attention is ~80x cheaper on 2 CPU cores); ARC tasks whose grids all fit 10x10 exist in plenty, so
L4 still runs real puzzles through the data layer. One test per family keeps the full 30x30 canvas.
Random weights are adjusted so halting is not trivial: the ACT v1 / TRM Q head gets random weights (its
init, zero weight / bias -5, never halts adaptively) and the lite halting bias sits near the 0.9
threshold, so some samples halt early and others do not.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from hrm_edge.config import preset
from hrm_edge.model import build_model
from hrm_edge.model.act import halt_margin

FAST = {"l3_batches": (1, 3), "l4_puzzles": 3}


def tiny_model(name: str = "tiny", canvas: int = 10, seed: int = 0) -> torch.nn.Module:
    cfg = dataclasses.replace(preset(name), canvas=canvas)
    model = build_model(cfg, seed=seed).eval()
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        if hasattr(model, "q_head"):  # act-v1, trm
            model.q_head.weight.copy_(torch.randn(model.q_head.weight.shape, generator=g) * 0.5)
            model.q_head.bias.fill_(0.0)
            model.puzzle_emb.weights.copy_(torch.randn(model.puzzle_emb.weights.shape, generator=g) * 0.5)
        else:
            model.halt_predictor.weight.mul_(8.0)
    # centre the halting decision on random inputs, so samples fall on both sides of it
    tokens, pe = random_tokens(model, 16, seed=seed + 11)
    with torch.no_grad():
        t = torch.from_numpy(tokens)
        v = None if pe is None else torch.from_numpy(pe)
        z = model.empty_carry(16)
        margins = []
        for k in range(cfg.max_steps):
            _, qh, qc, *z = model.step(t, v, z[0], z[1], torch.full((16,), k == 0))
            margins.append(halt_margin(qh, qc, model.adaptive_rule))
        mid = torch.cat(margins[1:]).median()
        if hasattr(model, "q_head"):
            model.q_head.bias[0] -= mid
        else:
            model.halt_predictor.bias -= mid
    return model


def random_tokens(model: torch.nn.Module, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    cfg = model.config
    tokens = rng.integers(0, cfg.vocab_size, (batch, cfg.seq_len)).astype(np.int32)
    pe = None
    if cfg.puzzle_emb_ndim:
        ids = torch.as_tensor(rng.integers(0, cfg.num_puzzle_identifiers, batch))
        with torch.no_grad():
            pe = model.puzzle_vectors(ids).numpy()
    return tokens, pe


def test_tiny_models_halt_non_trivially() -> None:
    """The helpers' premise: adaptive halting gives different steps per sample (else halting is untested)."""
    from hrm_edge.runtime.torch import TorchRunner

    for name in ("tiny", "tiny-lite", "tiny-trm"):
        m = tiny_model(name)
        tokens, pe = random_tokens(m, 8)
        with TorchRunner.from_model(m) as r:
            steps = r.run_act(tokens, pe, halt="adaptive").steps
        assert len(set(steps.tolist())) > 1, (name, steps)
