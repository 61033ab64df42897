"""TRM through the one export path: all three ACT modes pass the parity ladder, the in-graph halting is
TRM's rule, the mlp_t variant exports, fp16 / int8 variants build, and an ONNX Runtime bundle runs under
the shared ACT driver exactly like PyTorch.

Tolerances are the ladder's own (L3: 1e-4 on logits / q-values per segment, widened only by a measured
fp32 noise floor; L4: identical grids and halting on real ARC tasks), asserted from the manifest.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import FAST, random_tokens, tiny_model

from hrm_edge.config import preset
from hrm_edge.export import export_model
from hrm_edge.export.onnx import ExportOptions, export_onnx
from hrm_edge.model import build_model
from hrm_edge.runtime.onnxruntime import OrtRunner
from hrm_edge.runtime.torch import TorchRunner

CASES = [("step", "max"), ("unrolled", "adaptive"), ("loop", "adaptive")]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("trm")
    model = tiny_model("tiny-trm")
    return {act: export_model(model, root / act, act=act, halt=halt, **FAST) for act, halt in CASES}


@pytest.mark.parametrize("act,halt", CASES)
def test_all_act_modes_pass_the_ladder(bundles: dict, act: str, halt: str) -> None:
    r = bundles[act]
    m = json.loads((r.path / "manifest.json").read_text())
    assert m["spec"]["family"] == "trm" and m["spec"]["adaptive_rule"] == "q_halt>0"
    assert m["config"]["puzzle_emb_len"] == m["spec"]["puzzle_emb_len"] == 4
    assert m["act"]["mode"] == act and m["act"]["halt"] == (None if act == "step" else halt)
    assert m["parity"]["ok"] and set(m["parity"]["levels"]) == {"L1", "L2", "L3", "L4"}
    assert m["targets"]["trt-8.5"]["ok"] and m["targets"]["trt-10"]["ok"]  # TensorRT op lint
    assert (r.path / "puzzle_emb.npy").exists()
    l3 = m["parity"]["levels"]["L3"]["details"]
    assert l3["max_abs"]["logits"] <= 1e-4 and l3["max_abs"]["q_halt"] <= 1e-4
    assert l3["halting"]["agree"] + l3["halting"]["near_tie"] == l3["halting"]["samples"] > 0
    modes = m["parity"]["levels"]["L4"]["details"]["modes"]
    assert set(modes) == ({"max", "adaptive"} if act == "step" else {halt})
    for s in modes.values():
        assert s["grids_identical"] == s["inputs"] == 3 and s["halting_agree"] == 3


def test_ort_bundles_equal_torch_under_the_shared_driver(bundles: dict) -> None:
    model = tiny_model("tiny-trm")
    tokens, pe = random_tokens(model, 6, seed=5)
    with TorchRunner.from_model(model) as t:
        want = {h: t.run_act(tokens, pe, halt=h) for h in ("max", "adaptive")}
    assert len(set(want["adaptive"].steps.tolist())) > 1  # halting varies, so agreement means something
    for act, halt in CASES:
        with OrtRunner.from_bundle(bundles[act].path) as o:
            for h in (("max", "adaptive") if act == "step" else (halt,)):
                got = o.run_act(tokens, pe, halt=h)
                np.testing.assert_array_equal(got.steps, want[h].steps)
                np.testing.assert_array_equal(got.predictions, want[h].predictions)


@pytest.mark.parametrize("bias,steps", [((1.0, 100.0), 1), ((-1.0, -100.0), 4)])
def test_in_graph_halting_is_q_halt_above_zero(bias: tuple[float, float], steps: int) -> None:
    """The loop graph halts on q_halt > 0 whatever q_continue says (the ACT v1 rule gives the other count)."""
    model = tiny_model("tiny-trm")
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.copy_(torch.tensor(bias))
    g = export_onnx(model, ExportOptions(act="loop", halt="adaptive")).model
    sess = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    tokens, pe = random_tokens(model, 3)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"tokens": tokens, "puzzle_emb": pe})))
    assert (out["steps"] == steps).all()


def test_mlp_t_variant_exports_without_attention(tmp_path: Path) -> None:
    cfg = dataclasses.replace(preset("tiny-trm"), canvas=10, mlp_t=True, pos_encodings="none")
    m = build_model(cfg, seed=0).eval()
    assert any(k.endswith("mlp_t.gate_up_proj.weight") for k in m.state_dict())
    with torch.no_grad():  # non-zero puzzle rows, so the puzzle input path is exercised
        m.puzzle_emb.weights.normal_(0, 0.5)
    # 2 segments: with random weights the sequence MLP amplifies a 1e-5 carry perturbation ~5x per segment
    # (measured: 1.8e-4 -> 5e-3 on logits over segments 2..4), so 4 free-running segments turn ONNX Runtime's
    # per-segment rounding (L3: ~1e-5) into argmax flips that L4 rightly cannot tell from a broken graph
    r = export_model(m, tmp_path / "mlp_t", act="unrolled", halt="max", segments=2, l3_batches=(2,), l4_puzzles=2)
    man = r.manifest
    assert man["act"]["segments"] == 2
    assert man["parity"]["ok"] and man["targets"]["trt-8.5"]["ok"]
    assert "Softmax" not in man["onnx"]["op_types"]  # no attention anywhere: the sequence MLP replaced it


def test_fp16_and_int8_variants(tmp_path: Path) -> None:
    model = tiny_model("tiny-trm")
    fp16 = export_model(model, tmp_path / "fp16", act="loop", precision="fp16", l3_batches=(2,), l4_puzzles=3)
    m = fp16.manifest
    assert m["precision"] == "fp16" and m["targets"]["trt-8.5"]["ok"] and m["parity"]["levels"]["L2"]["ok"]
    assert min(s["cell_agreement"] for s in m["parity"]["levels"]["L4"]["details"]["modes"].values()) >= 0.97
    int8 = export_model(model, tmp_path / "int8", precision="int8", l3_batches=(2,), l4_puzzles=3)
    m = int8.manifest
    assert m["target"] == "ort" and m["targets"]["ort"]["ok"] and "MatMulInteger" in m["onnx"]["op_types"]
    assert min(s["cell_agreement"] for s in m["parity"]["levels"]["L4"]["details"]["modes"].values()) >= 0.90
