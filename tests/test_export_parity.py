"""The parity gate: does it refuse a broken export and accept a correct one, on principle?

First the L3 rule in isolation (stub runners stand in for PyTorch fp32 / float64, so the arithmetic is
tested exactly): base tolerance 1e-4, widened only by a measured fp32 noise floor (x FLOOR_FACTOR).
Then the real gate on the session's tiny bundles: the same bundle checked against a reference whose
one weight element moved by 1e-2 (L2 would catch that in a graph, so the change is made on the PyTorch
side: the graph then computes a wrong weight) fails both L3 and L4 at segment 1, where the fp32 floor
is ~1e-6 and the tolerance max(1e-4, 8 x floor) = 1e-4; a graph with one op swapped (SwiGLU's Sigmoid
-> Tanh, every weight intact) fails L4 on its own, with its differing raw argmax grids counted as
differing even where neither decodes to an ARC grid. The unperturbed controls pass.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import tiny_model

from hrm_edge.export.onnx import prepare
from hrm_edge.export.parity import FLOOR_FACTOR, OrtTrace, check_l3, check_l4, teacher_forced
from hrm_edge.export.parity.stats import Stats
from hrm_edge.fileio import file_sha256
from hrm_edge.runtime.base import ActResult, ModelSpec
from hrm_edge.runtime.onnxruntime import OrtRunner

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


def run(delta: float, floor: float) -> Stats:
    stats = Stats(1e-4, gated=True)
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
    s = run(delta=5e-4, floor=2e-4)  # tol = max(1e-4, 8 x 2e-4) = 1.6e-3
    assert not s.failures and s.floors["logits"] >= 2e-4 - 1e-12
    assert s.worst[2] == FLOOR_FACTOR * s.floors["logits"]


def test_halting_disagreement_is_a_failure() -> None:
    t = trace(0.0)
    t.result.steps[:] = 1  # the graph claims it halted after one segment; the max rule says 2
    stats = Stats(1e-4, gated=True)
    teacher_forced(t, Stub(), Stub(), "max", SPEC, stats, "case")
    assert any("halts at segment 1" in f for f in stats.failures)


def test_above_floor_fails() -> None:
    s = run(delta=2e-3, floor=2e-4)  # 2e-3 > 8 x 2e-4
    assert s.failures and s.worst[2] == pytest.approx(1.6e-3)


# --------------------------------------------------------------------------------------------------
# the gate on real (tiny) bundles
# --------------------------------------------------------------------------------------------------
def wrong_weight(model: torch.nn.Module, key: str, delta: float = 1e-2) -> torch.nn.Module:
    """A copy of the reference with one element of one weight moved by `delta`."""
    bad = copy.deepcopy(model)
    w = dict(bad.named_parameters())[key]
    with torch.no_grad():
        w.view(-1)[w.numel() // 2] += delta
    return bad


def swap_first_op(bundle: Path, out: Path, op: str, new: str) -> Path:
    """A copy of a bundle whose first `op` node (any subgraph) computes `new` instead; manifest hash updated."""
    shutil.copytree(bundle, out)
    model = onnx.load(str(out / "model.onnx"))

    def walk(g: onnx.GraphProto) -> bool:
        for n in g.node:
            if n.op_type == op:
                n.op_type = new
                return True
            if any(walk(a.g) for a in n.attribute if a.type == onnx.AttributeProto.GRAPH):
                return True
        return False

    assert walk(model.graph), op
    onnx.save(model, str(out / "model.onnx"))
    man = json.loads((out / "manifest.json").read_text())
    man["onnx"]["sha256"] = file_sha256(out / "model.onnx")
    (out / "manifest.json").write_text(json.dumps(man))
    return out


GATE_CASES = [("tiny", "step", "max", "H_level.layers.0.mlp.gate_up_proj.weight"),
              ("tiny", "loop", "adaptive", "L_level.layers.0.self_attn.qkv_proj.weight"),
              ("tiny-lite", "step", "max", "l_layers.0.linear1.weight")]


@pytest.mark.parametrize("name, act, halt, key", GATE_CASES, ids=[f"{c[0]}-{c[1]}" for c in GATE_CASES])
def test_wrong_weight_fails_l3_and_l4_at_segment_1(bundles: dict, name: str, act: str, halt: str, key: str) -> None:
    ref = prepare(tiny_model(name))
    with OrtRunner.from_bundle(bundles[(name, act, halt)].path) as r:
        good3 = check_l3(r, ref, r.spec, "fp32", (1,))
        good4 = check_l4(r, ref, r.spec, "fp32", "arc-agi-1/evaluation", 1, None)
        bad = wrong_weight(ref, key)
        bad3 = check_l3(r, bad, r.spec, "fp32", (1,))
        bad4 = check_l4(r, bad, r.spec, "fp32", "arc-agi-1/evaluation", 1, None)
    assert good3.ok and good4.ok, (good3.summary, good4.summary)
    for lv in (bad3, bad4):
        assert not lv.ok and lv.worst > lv.tolerance, lv.summary
        assert "segment 1" in lv.summary, lv.summary
    seg1 = bad4.details["segments"][0]
    assert seg1["tolerance"]["logits"] == 1e-4 and seg1["floor"]["logits"] < 1e-5  # the floor is fp32 rounding


@pytest.mark.parametrize("act, halt", [("step", "max"), ("loop", "adaptive")])
def test_swapped_op_fails_l4_and_grids_count_as_different(bundles: dict, tmp_path: Path, act: str,
                                                           halt: str) -> None:
    broken = swap_first_op(bundles[("tiny", act, halt)].path, tmp_path / "b", "Sigmoid", "Tanh")
    ref = prepare(tiny_model("tiny"))
    with OrtRunner.from_bundle(broken) as r:
        l4 = check_l4(r, ref, r.spec, "fp32", "arc-agi-1/evaluation", 3, None)
    assert not l4.ok and "segment 1" in l4.summary and l4.worst > l4.tolerance, l4.summary
    for st in l4.details["modes"].values():
        assert st["grids_identical"] < st["inputs"] == 3, st
