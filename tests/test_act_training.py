"""ACT v1 training carry: halted samples take new data, exploration, and the Q-learning target."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from conftest import random_tokens

from hrm_edge.config import preset
from hrm_edge.model import build_model
from hrm_edge.model.act import act_train_step, initial_train_carry


def tiny() -> torch.nn.Module:
    """The `tiny` preset on a 10x10 canvas: the carry logic does not depend on the canvas, the cost does."""
    return build_model(dataclasses.replace(preset("tiny"), canvas=10), seed=0)


def _batch(rng: np.random.Generator, b: int) -> dict[str, torch.Tensor]:
    """A training batch for `tiny()`: random inputs and labels, puzzle identifiers 0..15 cycled."""
    model = tiny()
    return {"inputs": torch.from_numpy(random_tokens(model, b, rng)[0]),
            "labels": torch.from_numpy(random_tokens(model, b, rng)[0]),
            "puzzle_identifiers": torch.arange(b, dtype=torch.int32) % 16}


def test_train_carry_halts_on_q_and_replaces_data(rng) -> None:
    model = tiny().train()
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # q_halt > q_continue for everyone
    b1, b2 = _batch(rng, 4), _batch(rng, 4)
    carry = initial_train_carry(model, b1)
    carry, out = act_train_step(model, carry, b1, exploration_prob=0.0)
    assert carry.halted.all() and (carry.steps == 1).all()
    assert torch.equal(carry.data["inputs"], b1["inputs"])
    assert out["logits"].requires_grad and "target_q_continue" in out
    t = out["target_q_continue"]
    assert ((t > 0) & (t < 1)).all()
    carry, _ = act_train_step(model, carry, b2, exploration_prob=0.0)
    assert torch.equal(carry.data["inputs"], b2["inputs"]), "halted samples must take the new batch"
    assert (carry.steps == 1).all()


def test_train_carry_keeps_data_until_max_steps_when_q_says_continue(rng) -> None:
    model = tiny().train()  # q_head bias (-5, -5): q_halt == q_continue
    b1 = _batch(rng, 3)
    carry = initial_train_carry(model, b1)
    for n in range(1, model.config.halt_max_steps + 1):
        carry, out = act_train_step(model, carry, _batch(rng, 3) if n > 1 else b1, exploration_prob=0.0)
        assert torch.equal(carry.data["inputs"], b1["inputs"])
        assert (carry.steps == n).all()
    assert carry.halted.all()


def test_exploration_forces_a_minimum_number_of_segments(rng) -> None:
    torch.manual_seed(0)
    model = tiny().train()
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))
    b = _batch(rng, 64)
    carry = initial_train_carry(model, b)
    carry, _ = act_train_step(model, carry, b, exploration_prob=1.0)
    assert not carry.halted.any(), "with exploration every sample runs at least 2 segments"
    model.eval()
    carry = initial_train_carry(model, b)
    carry, out = act_train_step(model, carry, b)
    assert not carry.halted.any() and "target_q_continue" not in out, "eval halts only at max steps"
