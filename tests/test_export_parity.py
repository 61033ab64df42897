"""The L3 rule in isolation: base tolerance 1e-4, widened only by a measured fp32 noise floor (x3).

Stub runners stand in for PyTorch fp32 / float64 so the arithmetic of the gate is tested exactly.
"""

from __future__ import annotations

import numpy as np

from hrm_edge.export.parity import FLOOR_FACTOR, OrtTrace, _Stats, teacher_forced
from hrm_edge.runtime.base import ActResult, ModelSpec

SPEC = ModelSpec(family="act-v1", vocab_size=3, seq_len=2, hidden_size=2, puzzle_emb_len=0, puzzle_emb_ndim=0,
                 max_steps=2, min_halt_steps=1, halt_modes=("max", "adaptive"))


class Stub:
    """Returns fixed outputs (offset by `shift`) for any feed; counts calls."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift, self.calls = shift, 0

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        b = feed["tokens"].shape[0]
        return {"logits": np.full((b, 2, 3), 1.0 + self.shift), "q_halt": np.full(b, -1.0 + self.shift),
                "q_continue": np.full(b, 1.0), "z_H_next": np.zeros((b, 2, 2)), "z_L_next": np.zeros((b, 2, 2))}


def trace(delta: float) -> OrtTrace:
    feed = {"tokens": np.zeros((2, 2), np.int32), "z_H": np.zeros((2, 2, 2), np.float32),
            "z_L": np.zeros((2, 2, 2), np.float32), "halted": np.ones(2, bool)}
    out = {"logits": np.full((2, 2, 3), 1.0 + delta, np.float32), "q_halt": np.full(2, -1.0, np.float32),
           "q_continue": np.full(2, 1.0, np.float32), "z_H_next": np.zeros((2, 2, 2), np.float32),
           "z_L_next": np.zeros((2, 2, 2), np.float32)}
    res = ActResult(out["logits"], out["q_halt"], out["q_continue"], np.array([2, 2], np.int32))
    return OrtTrace(res, [feed, feed], [out, out])


def run(delta: float, floor: float) -> _Stats:
    stats = _Stats(1e-4, gated=True)
    t64 = Stub(shift=floor)
    teacher_forced(trace(delta), Stub(), t64, "max", SPEC, stats, "case")
    stats.t64_calls = t64.calls  # type: ignore[attr-defined]
    return stats


def test_within_base_tolerance_needs_no_float64() -> None:
    s = run(delta=5e-5, floor=1.0)
    assert not s.failures and s.t64_calls == 0 and s.halting["agree"] == 2


def test_above_base_fails_when_fp32_is_stable() -> None:
    s = run(delta=5e-4, floor=1e-7)
    assert s.failures and "logits" in s.failures[0] and s.worst[0] == "logits"


def test_above_base_passes_within_noise_floor() -> None:
    s = run(delta=5e-4, floor=2e-4)  # tol = max(1e-4, 3 x 2e-4) = 6e-4
    assert not s.failures and s.floors["logits"] >= 2e-4 - 1e-12
    assert s.worst[2] == FLOOR_FACTOR * s.floors["logits"]


def test_halting_disagreement_is_a_failure() -> None:
    t = trace(0.0)
    t.result.steps[:] = 1  # the graph claims it halted after one segment; the max rule says 2
    stats = _Stats(1e-4, gated=True)
    teacher_forced(t, Stub(), Stub(), "max", SPEC, stats, "case")
    assert any("halts at segment 1" in f for f in stats.failures)
