"""The ORT-only rewrites (graph/ort_fusions.py): every attention block becomes one MultiHeadAttention
kernel, every RoPE one RotaryEmbedding, every SwiGLU gate/up Split two MatMuls; ONNX Runtime keeps the
fused kernels after its own optimisation, and the answers stay those of the standard-op graph: logits
and q values within 1e-4 over a whole ACT run (the export's parity bound; the same sums in another
order drift apart by ~1e-5 per segment)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import random_tokens, tiny_model

from hrm_edge.export import export_model
from hrm_edge.export.onnx import op_counts
from hrm_edge.graph.ort_fusions import fuse_attention, fuse_for_ort
from hrm_edge.runtime.onnxruntime import OrtRunner, session_options

TOL = 1e-4


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[object, Path]]:
    root = tmp_path_factory.mktemp("mha")
    out = {}
    for name, act in (("tiny", "step"), ("tiny-lite", "step"), ("tiny", "loop"), ("tiny", "unrolled")):
        m = tiny_model(name)
        out[(name, act)] = (m, export_model(m, root / f"{name}-{act}", act=act, l3_batches=(2,), l4_puzzles=0).path)
    return out


@pytest.mark.parametrize("key", [("tiny", "step"), ("tiny-lite", "step"), ("tiny", "loop"), ("tiny", "unrolled")])
def test_every_block_becomes_one_kernel_that_ort_keeps(bundles: dict, key: tuple[str, str], tmp_path: Path) -> None:
    import onnxruntime as ort

    model, path = bundles[key]
    g = onnx.load(str(path / "model.onnx"))
    before = op_counts(g)
    softmax = before.get("Softmax", 0)
    assert softmax >= 2
    made = fuse_for_ort(g, model.config.num_heads)
    counts = op_counts(g)
    rope = key[0] == "tiny"  # ACT v1 rotates Q and K (RoPE) and has a SwiGLU per layer; lite has neither
    main_only = key[1] != "loop"  # RoPE and split rewrites look at the main graph (step and unrolled bundles)
    want_rope = 2 * softmax if rope and main_only else 0
    want_split = softmax if rope and main_only else 0
    assert made == {"attention": softmax, "rotary": want_rope, "split_matmul": want_split}
    assert counts.get("com.microsoft::MultiHeadAttention") == softmax and "Softmax" not in counts
    assert counts.get("com.microsoft::RotaryEmbedding", 0) == want_rope
    assert counts.get("Neg", 0) == before.get("Neg", 0) - want_rope  # each RoPE's Neg went with it
    assert counts.get("Split", 0) == before.get("Split", 0) - want_split
    so = session_options(1)
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(g.SerializeToString(), so, providers=["CPUExecutionProvider"])
    kept = op_counts(onnx.load(str(tmp_path / "opt.onnx")))
    assert kept.get("com.microsoft::MultiHeadAttention") == softmax
    assert kept.get("com.microsoft::RotaryEmbedding", 0) == want_rope


@pytest.mark.parametrize("key", [("tiny", "step"), ("tiny-lite", "step"), ("tiny", "loop"), ("tiny", "unrolled")])
def test_fused_runner_answers_like_the_standard_graph(bundles: dict, key: tuple[str, str]) -> None:
    model, path = bundles[key]
    tokens, pe = random_tokens(model, 3, seed=7)
    fused, plain = OrtRunner.from_bundle(path), OrtRunner.from_bundle(path)
    plain.fusions = False
    with fused, plain:
        assert fused.fused_kernels >= 2 and plain.fused_kernels == 0
        halts = model.halt_modes if key[1] == "step" else [fused.baked_halt]
        for halt in halts:
            a, b = plain.run_act(tokens, pe, halt=halt), fused.run_act(tokens, pe, halt=halt)
            np.testing.assert_array_equal(a.steps, b.steps)
            for got, want in ((b.logits, a.logits), (b.q_halt, a.q_halt), (b.q_continue, a.q_continue)):
                assert float(np.abs(got - want).max()) <= TOL
            np.testing.assert_array_equal(a.logits.argmax(-1), b.logits.argmax(-1))


def test_unmatched_graph_is_left_alone() -> None:
    """A Softmax whose output feeds two nodes is not an attention block: nothing may change."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["s"]), helper.make_node("Softmax", ["s"], ["p"]),
                           helper.make_node("MatMul", ["p", "x"], ["y"]), helper.make_node("Relu", ["p"], ["z"])],
                          "g", [x], [y, z])
    m = helper.make_model(g)
    before = m.SerializeToString()
    assert fuse_attention(m, 2) == 0 and m.SerializeToString() == before


def test_fp16_bundle_runs_unfused_on_the_cpu(tmp_path: Path) -> None:
    """fp16 bundles are for GPUs; on the CPU provider ORT runs them as written (its contrib kernels here are fp32)."""
    model = tiny_model("tiny")
    path = export_model(model, tmp_path / "fp16", act="step", precision="fp16", l3_batches=(), l4_puzzles=0).path
    tokens, pe = random_tokens(model, 2, seed=1)
    with OrtRunner.from_bundle(path) as r:
        assert r.fused_kernels == 0
        out = r.run_act(tokens, pe, halt="max")
    assert np.isfinite(out.logits).all()


def test_environment_switch_turns_the_fusions_off(bundles: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = bundles[("tiny", "step")]
    monkeypatch.setenv("HRM_EDGE_ORT_FUSIONS", "0")
    with OrtRunner.from_bundle(path) as r:
        assert not r.fusions and r.fused_kernels == 0
    monkeypatch.delenv("HRM_EDGE_ORT_FUSIONS")
    with OrtRunner.from_bundle(path) as r:
        assert r.fusions and r.fused_kernels > 0
