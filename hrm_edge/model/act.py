"""Adaptive computation time: the halting rules and the ACT v1 training carry.

Inference halting rules (shared by every runtime through runtime/base.py and by the in-graph
masks of the unrolled / loop exports):
- `max`: every sample runs all segments (the reference evaluation).
- `adaptive`: a sample stops at the first segment where its family's `adaptive_rule` holds (after the
  family's minimum number of segments): `q_halt>q_continue` (ACT v1, lite), or `q_halt>0` (TRM,
  whose reference trains no q_continue target). `halt_margin` is that rule as a number (> 0: halt).
- `batch-mean` (lite only): the whole batch stops when mean(sigmoid(q_halt)) > threshold, the
  rule of the user's train_arc_full.py, so answers depend on which samples share a batch.

Training (ACT v1): halted samples are replaced by new data, Q-learning explores a random minimum
number of segments, and the Q target for "continue" is the next segment's best Q value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # PyTorch-free runtimes (ONNX Runtime, TensorRT) use only the numpy rules below
    torch = None  # type: ignore[assignment]

HALT_MODES = ("max", "adaptive", "batch-mean")
#: what `adaptive` compares: q_halt with q_continue, or (TRM, `no_ACT_continue`) q_halt with 0
ADAPTIVE_RULES = ("q_halt>q_continue", "q_halt>0")


def halt_margin(q_halt: Any, q_continue: Any, rule: str = "q_halt>q_continue") -> Any:
    """How far a sample is past its adaptive halting point (> 0: it wants to halt); numpy or torch."""
    if rule == "q_halt>q_continue":
        return q_halt - q_continue
    if rule == "q_halt>0":
        return q_halt
    raise ValueError(f"unknown adaptive halting rule {rule!r}; expected one of {ADAPTIVE_RULES}")


def halt_mask(mode: str, steps_done: Any, q_halt: Any, q_continue: Any, max_steps: int, min_steps: int,
              threshold: float | None = None, rule: str = "q_halt>q_continue") -> Any:
    """Which samples halt after `steps_done` segments (1-based): last | (ready & wants_to_halt).

    Works on numpy arrays (the host driver) and torch tensors; returns a boolean array shaped like
    q_halt. `steps_done` is an int on the host (or, with numpy, one count per sample: the continuous
    scheduler's slots are at different segments), or a 0-d tensor (the segment counter inside an
    exported unrolled / loop graph), so the rule has no Python branch on its value and traces.
    Samples that halted earlier are the caller's business (the driver freezes them).
    """
    if torch is not None and isinstance(q_halt, torch.Tensor):
        def like(v: Any) -> Any:  # a bool or 0-d tensor, spread over the batch
            return v.expand_as(q_halt) if isinstance(v, torch.Tensor) else torch.full_like(q_halt, bool(v),
                                                                                            dtype=torch.bool)

        def sigmoid(x: Any) -> Any:
            return torch.sigmoid(x.float())
    else:
        def like(v: Any) -> Any:  # a bool, or per-sample bools (the continuous scheduler's own counters)
            return np.broadcast_to(np.asarray(v, dtype=bool), np.shape(q_halt)).copy()

        def sigmoid(x: Any) -> Any:
            return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))
    last = like(steps_done >= max_steps)
    if mode == "max":
        return last
    ready = like(steps_done >= min_steps)
    if mode == "adaptive":
        want = halt_margin(q_halt, q_continue, rule) > 0
    elif mode == "batch-mean":
        if threshold is None:
            raise ValueError("batch-mean halting needs the family's threshold")
        want = like(sigmoid(q_halt).mean() > threshold)
    else:
        raise ValueError(f"unknown halt mode {mode!r}")
    return last | (ready & want)


class HaltTracker:
    """Per-sample halting bookkeeping on the host: which samples are still live, and after how many
    segments each one halted. The ACT driver and the parity replay of recorded q values share it."""

    def __init__(self, batch: int, mode: str, max_steps: int, min_steps: int, threshold: float | None,
                 rule: str = "q_halt>q_continue") -> None:
        self.mode, self.max_steps, self.min_steps, self.threshold = mode, max_steps, min_steps, threshold
        self.rule = rule
        self.done = np.zeros(batch, dtype=bool)
        self.steps = np.zeros(batch, dtype=np.int32)

    @classmethod
    def for_spec(cls, batch: int, mode: str, spec: Any) -> HaltTracker:
        """A tracker with a model spec's halting settings (runtime/base.py ModelSpec, or anything alike)."""
        return cls(batch, mode, spec.max_steps, spec.min_halt_steps, spec.halt_threshold, spec.adaptive_rule)

    def update(self, n: int, q_halt: np.ndarray, q_continue: np.ndarray) -> np.ndarray:
        """Record segment `n` (1-based); returns the samples that were live for it (their outputs count)."""
        live = ~self.done
        self.steps[live] = n
        self.done |= live & halt_mask(self.mode, n, q_halt, q_continue, self.max_steps, self.min_steps,
                                      self.threshold, self.rule)
        return live


@dataclass
class ActTrainCarry:
    """Per-sample ACT state during training: model carry, segments run, halted flag, current data."""

    z_H: torch.Tensor
    z_L: torch.Tensor
    steps: torch.Tensor
    halted: torch.Tensor
    data: dict[str, torch.Tensor]


def initial_train_carry(model: Any, batch: dict[str, torch.Tensor]) -> ActTrainCarry:
    """All samples start halted, so the first call loads the batch and resets their carry."""
    b = batch["inputs"].shape[0]
    z_H, z_L = model.empty_carry(b)
    return ActTrainCarry(z_H, z_L, torch.zeros(b, dtype=torch.int32), torch.ones(b, dtype=torch.bool),
                         {k: torch.empty_like(v) for k, v in batch.items()})


def act_train_step(model: Any, carry: ActTrainCarry, batch: dict[str, torch.Tensor],
                   exploration_prob: float | None = None, puzzle_vectors: Any = None
                   ) -> tuple[ActTrainCarry, dict[str, torch.Tensor]]:
    """One ACT training segment with the reference's halting, exploration and Q target (ACT v1 and TRM).

    `batch` holds `inputs` and `puzzle_identifiers` (and `labels`, carried along). Halted samples
    take the new batch's row; the others keep their data and carry. `puzzle_vectors(ids)` replaces
    `model.puzzle_vectors` (the trainer hands in leaf rows for its sparse puzzle optimizer).
    """
    cfg = model.config
    halted = carry.halted.to(batch["inputs"].device)
    data = {k: torch.where(halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v) for k, v in carry.data.items()}
    rows = puzzle_vectors or model.puzzle_vectors
    pvec = rows(data["puzzle_identifiers"]) if "puzzle_identifiers" in data else None
    x = model.embed(data["inputs"], pvec)
    z = model.reset_carry(halted, (carry.z_H.to(x.device), carry.z_L.to(x.device)), x)
    steps = torch.where(halted, torch.zeros_like(carry.steps), carry.steps.to(x.device))
    z, logits, q_halt, q_cont = model.segment(z, x)
    out = {"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_cont}
    with torch.no_grad():
        steps = steps + 1
        is_last = steps >= cfg.max_steps
        new_halted = is_last
        if model.training and cfg.max_steps > 1:
            new_halted = new_halted | (halt_margin(q_halt, q_cont, model.adaptive_rule) > 0)
            prob = cfg.halt_exploration_prob if exploration_prob is None else exploration_prob
            explore = torch.rand_like(q_halt) < prob
            min_steps = explore * torch.randint_like(steps, low=2, high=cfg.max_steps + 1)
            new_halted = new_halted & (steps >= min_steps)
            if model.adaptive_rule == "q_halt>q_continue":  # TRM (`q_halt>0`) trains no q_continue target
                _, _, nq_halt, nq_cont = model.segment(z, x)
                out["target_q_continue"] = torch.sigmoid(torch.where(is_last, nq_halt, torch.maximum(nq_halt, nq_cont)))
    return ActTrainCarry(z[0], z[1], steps, new_halted, data), out


def skip_train_draws(model: Any, n: int, device: torch.device) -> None:
    """Consume exactly the random numbers `act_train_step` draws for n samples, computing nothing.

    A data-parallel rank burns the draws of the chunks other ranks train, so every rank's generator
    follows the 1-process stream and exploration picks the same samples as a 1-process run.
    """
    if model.training and model.config.max_steps > 1:
        torch.rand(n, device=device)
        torch.randint(2, model.config.max_steps + 1, (n,), dtype=torch.int32, device=device)
