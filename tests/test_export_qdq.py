"""Static int8 in QDQ form: calibrated on real augmented ARC puzzles, standard Q/DQ a TensorRT parser takes,
structural parity levels pass, and its agreement with fp32 PyTorch is measured and recorded.

Agreement floors here are loose sanity bounds for tiny random models (>= 80% of cells at L4), not
product claims; benchmarks/README.md reports the measured figures for the real presets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import tiny_model
from onnx import TensorProto, helper, numpy_helper

from hrm_edge.export import QdqOptions, export_model
from hrm_edge.export.calib import calibration_puzzles, segment_feeds
from hrm_edge.export.onnx import ExportOptions, export_onnx
from hrm_edge.export.precision import matmul_groups
from hrm_edge.graph.qdq_uint8 import activations_to_uint8
from hrm_edge.runtime.cpu_isa import u8s8_exact
from hrm_edge.runtime.onnxruntime import OrtRunner

QDQ = QdqOptions(puzzles=4, augment=2)


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_qdq_export_passes_structural_levels_and_reports_agreement(tmp_path: Path, name: str) -> None:
    m = tiny_model(name)
    r = export_model(m, tmp_path / "qdq", precision="int8-qdq", l3_batches=(2,), l4_puzzles=3, qdq=QDQ)
    man = r.manifest
    assert man["precision"] == "int8-qdq" and man["target"] == "trt-8.5"
    levels = man["parity"]["levels"]
    assert levels["L1"]["ok"] and levels["L2"]["ok"]  # structure: lint + every weight (int8: within half a step)
    assert man["targets"]["trt-8.5"]["ok"] and man["targets"]["trt-10"]["ok"]
    ops = man["onnx"]["op_types"]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert not {"MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul"} & set(ops)
    assert not levels["L3"]["details"]["gated"]
    cells = [s["cell_agreement"] for s in levels["L4"]["details"]["modes"].values()]
    assert cells and min(cells) >= 0.80
    assert "l4" in man["precision_report"]
    q = man["quantization"]
    assert q["format"] == "QDQ" and q["calibration"] == "arc-agi-1/training"
    assert q["fp32_matmuls"] == ["attention", "heads", "down", "o_proj"]


def test_qdq_is_symmetric_int8_and_leaves_attention_in_fp32(tmp_path: Path) -> None:
    """TensorRT explicit quantization needs int8 with zero point 0; attention products, heads and the down / o_proj
    projections stay fp32 by default, every other weight matmul is quantized."""
    m = tiny_model("tiny")
    r = export_model(m, tmp_path / "qdq", precision="int8-qdq", l3_batches=(1,), l4_puzzles=0, qdq=QDQ)
    model = onnx.load(str(r.path / "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    zps = [n.input[2] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps
    for z in set(zps):
        assert inits[z].data_type == TensorProto.INT8 and not numpy_helper.to_array(inits[z]).any()
    producer = {o: n for n in model.graph.node for o in n.output}
    groups = matmul_groups(export_onnx(m, ExportOptions()).model.graph)  # roles from the fp32 graph, same names
    assert groups["attention"]
    for name in groups["attention"] + groups["heads"]:
        node = next(n for n in model.graph.node if n.name == name)
        assert all(producer.get(i) is None or producer[i].op_type != "DequantizeLinear" for i in node.input)
    quantized = {n.name for n in model.graph.node if n.name in groups["weights"]
                 and any(i in producer and producer[i].op_type == "DequantizeLinear" for i in n.input)}
    kept = set(groups["down"]) | set(groups["o_proj"])  # default: the unnormalised-input projections stay fp32
    assert kept and quantized == set(groups["weights"]) - kept
    tok = np.full((2, m.config.seq_len), 2, np.int32)
    pe = np.zeros((2, m.config.puzzle_emb_ndim), np.float32)
    runner = OrtRunner.from_bundle(r.path)
    # activations as u8 only where ORT's u8 x s8 kernels are exact (VNNI); on an AVX2-only x86 they clip
    assert runner.uint8_activations is u8s8_exact()
    with runner as o:  # runs and gives finite logits
        logits = o.run_act(tok, pe, halt="max").logits
    assert np.isfinite(logits).all()
    s8 = OrtRunner.from_bundle(r.path)
    s8.uint8_activations = False  # the bundle as written: s8 x s8, exact on every CPU
    with s8 as o:
        want = o.run_act(tok, pe, halt="max").logits
    # the same numbers up to float summation order (measured: u8 forced on an AVX2-only CPU is off by O(1))
    np.testing.assert_allclose(logits, want, atol=1e-3 * np.abs(want).max())


def test_matmul_groups_of_a_step_graph() -> None:
    # tiny: 6 layer passes x (qkv, o_proj, gate_up, down) weight matmuls, x (QK^T, PV) attention, + lm_head, q_head
    g = export_onnx(tiny_model("tiny"), ExportOptions()).model
    groups = matmul_groups(g.graph)
    assert (len(groups["weights"]), len(groups["attention"]), len(groups["heads"])) == (24, 12, 2)
    assert len(groups["down"]) == len(groups["o_proj"]) == 6  # one of each per layer pass, all among the weights
    assert all("down_proj" in n for n in groups["down"]) and all("o_proj" in n for n in groups["o_proj"])
    assert set(groups["down"]) | set(groups["o_proj"]) <= set(groups["weights"])


def test_uint8_activations_are_exact() -> None:
    """int8 (zero point 0) -> uint8 (zero point 128) changes the codes, never the dequantized values."""
    x = np.linspace(-3.0, 3.0, 1001, dtype=np.float32)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1001])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1001])],
                              initializer=[numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                                           numpy_helper.from_array(np.array(0, np.int8), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8

    def run(m: onnx.ModelProto) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = run(model)
    assert activations_to_uint8(model) == 1
    z = next(t for t in model.graph.initializer if t.name == "z")
    assert z.data_type == TensorProto.UINT8 and int(numpy_helper.to_array(z)) == 128
    after = run(model)
    assert np.array_equal(before.view(np.uint32), after.view(np.uint32)) and np.unique(before).size > 250


def test_calibration_feeds_cover_every_segment() -> None:
    """Calibration sees each segment's real carry: segment 1 restarts, later ones carry the graph's own output."""
    m = tiny_model("tiny")
    g = export_onnx(m, ExportOptions()).model
    tokens, pe = calibration_puzzles("arc-agi-1/training", m, 2, augment=2)
    assert tokens.shape == (2, m.config.seq_len) and pe is not None and pe.shape == (2, m.config.puzzle_emb_ndim)
    assert not np.array_equal(tokens[0], tokens[1])  # identity and an augmented copy differ
    feeds = list(segment_feeds(g, tokens, pe, segments=3))
    assert len(feeds) == 6
    assert feeds[0]["halted"].all() and not feeds[1]["halted"].any()
    assert not feeds[0]["z_H"].any() and feeds[1]["z_H"].any() and not np.array_equal(feeds[1]["z_H"], feeds[2]["z_H"])


def test_percentile_calibration_clips_where_minmax_does_not() -> None:
    """The calibration method reaches ORT: a Percentile cut gives activation scales no larger than MinMax's and
    smaller somewhere (outliers clipped); an unknown method is one clear error."""
    from hrm_edge.errors import HrmEdgeError
    from hrm_edge.export.precision import to_int8_qdq

    m = tiny_model("tiny")
    g = export_onnx(m, ExportOptions()).model
    tokens, pe = calibration_puzzles("arc-agi-1/training", m, 2, augment=2)
    feeds = list(segment_feeds(g, tokens, pe, segments=2))

    def activation_scales(q: Any) -> dict[str, float]:
        inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
        return {n.input[1]: float(inits[n.input[1]]) for n in q.graph.node
                if n.op_type == "QuantizeLinear" and n.input[0] not in inits}

    mm = activation_scales(to_int8_qdq(g, feeds))
    pct = activation_scales(to_int8_qdq(g, feeds, calibrate_method="percentile", percentile=99.0))
    assert mm.keys() == pct.keys() and len(mm) > 5
    assert all(pct[k] <= mm[k] * (1 + 1e-6) for k in mm) and sum(pct[k] < 0.9 * mm[k] for k in mm) > len(mm) // 2
    with pytest.raises(HrmEdgeError, match="calibration method"):
        to_int8_qdq(g, feeds, calibrate_method="nope")


# --------------------------------------------------------------------------------------------------
# opset >= 19: fp16 outside the Q/DQ pairs (what a strongly typed TensorRT engine needs to be int8 + fp16)
# --------------------------------------------------------------------------------------------------
def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input) + list(g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


@pytest.fixture(scope="module")
def fp16_body(tmp_path_factory) -> Any:
    """tiny exported int8-qdq at opset 19 (default target then trt-10), with the L4 free run on 3 puzzles."""
    return export_model(tiny_model("tiny"), tmp_path_factory.mktemp("q16") / "qdq16", precision="int8-qdq", opset=19,
                        l3_batches=(2,), l4_puzzles=3, qdq=QDQ)


def test_qdq_fp16_body_types(fp16_body) -> None:
    """fp16 scales on every Q/DQ, each DequantizeLinear straight into its MatMul (no Cast between), every MatMul
    in fp16, softmax / norms / residual sums in fp32, fp32 graph I/O, int8 weights and zero points."""
    man = fp16_body.manifest
    assert man["target"] == "trt-10" and man["onnx"]["opset"] == 19 and man["targets"]["trt-10"]["ok"]
    assert man["quantization"]["body"] == "fp16" and man["quantization"]["scales"] == "fp16"
    model = onnx.load(str(fp16_body.path / "model.onnx"))
    g, types = model.graph, _types(model)
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and {inits[n.input[1]].data_type for n in qdq} == {TensorProto.FLOAT16}  # scales
    assert {inits[n.input[2]].data_type for n in qdq} == {TensorProto.INT8}  # symmetric int8, zero point 0
    assert not any(numpy_helper.to_array(inits[n.input[2]]).any() for n in qdq)
    weights = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weights and {inits[n.input[0]].data_type for n in weights} == {TensorProto.INT8}
    assert {types[n.input[0]] for n in qdq if n.op_type == "QuantizeLinear"} == {TensorProto.FLOAT16}
    matmuls = [n for n in g.node if n.op_type in ("MatMul", "Gemm")]
    assert {types[i] for n in matmuls for i in n.input[:2]} == {TensorProto.FLOAT16}
    fed = [n for n in matmuls if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
                                     for i in n.input[:2])]
    groups = matmul_groups(export_onnx(tiny_model("tiny"), ExportOptions(opset=19)).model.graph)
    kept = set(groups["down"]) | set(groups["o_proj"])
    assert {n.name for n in fed} == set(groups["weights"]) - kept  # the same matmuls as the opset-17 bundle
    for n in fed:  # both operands straight from a DequantizeLinear: nothing between DQ and MatMul
        assert all(producer[i].op_type == "DequantizeLinear" for i in n.input[:2]), n.name
    assert {types[i] for n in g.node if n.op_type in ("Softmax", "ReduceMean") for i in n.input[:1]} == \
        {TensorProto.FLOAT}
    assert {v.type.tensor_type.elem_type for v in list(g.input) + list(g.output)} <= {
        TensorProto.FLOAT, TensorProto.INT32, TensorProto.BOOL}


def test_qdq_fp16_body_passes_the_ladder_on_onnxruntime(fp16_body) -> None:
    """ONNX Runtime CPU runs the fp16 Q/DQ form (opset 19 kernels): the ladder's structural levels pass, L4's
    agreement with fp32 PyTorch is measured (loose sanity floor, as for the fp32 body), and the ORT runner's
    uint8 re-expression keeps working with fp16 scales."""
    levels = fp16_body.manifest["parity"]["levels"]
    assert fp16_body.report.ok and levels["L1"]["ok"] and levels["L2"]["ok"]
    cells = [s["cell_agreement"] for s in levels["L4"]["details"]["modes"].values()]
    assert cells and min(cells) >= 0.80
    m = tiny_model("tiny")
    with OrtRunner.from_bundle(fp16_body.path) as o:
        tok = np.full((2, m.config.seq_len), 2, np.int32)
        pe = np.zeros((2, m.config.puzzle_emb_ndim), np.float32)
        assert np.isfinite(o.run_act(tok, pe).logits).all()


def test_qdq_fp16_body_refuses_what_blocks_the_fusion() -> None:
    """The check the export runs: a Q/DQ graph converted with Q/DQ kept fp32 (the converter then casts between DQ
    and MatMul) is named; below opset 19 there are no fp16 scales, so no fp16 body."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from hrm_edge.errors import HrmEdgeError
    from hrm_edge.export.precision import qdq_cast_problems, qdq_fp16_body

    w = numpy_helper.from_array(np.full((8, 4), 3, np.int8), "w")
    inits = [w, numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"), numpy_helper.from_array(np.full(4, 0.01, np.float32),
                                                                                          "ws"),
             numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="wdq", axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"], name="mm")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])], inits)

    def model(opset: int) -> onnx.ModelProto:
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 9
        return m

    good = qdq_fp16_body(model(19))
    assert qdq_cast_problems(good) == []
    x = np.linspace(-2, 2, 16, dtype=np.float32).reshape(2, 8)
    y = ort.InferenceSession(good.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    s16, w16 = np.float16(0.05), np.float16(0.01)
    want = np.clip(np.round(x / s16), -128, 127) * s16 @ (np.full((8, 4), 3) * w16)
    assert np.allclose(y, want, rtol=2e-3)
    blocked = convert_float_to_float16(model(19), keep_io_types=True,
                                       op_block_list=["QuantizeLinear", "DequantizeLinear"])
    problems = qdq_cast_problems(blocked)
    assert any("dq -> Cast" in p and "MatMul" in p for p in problems) and any("not an fp16" in p for p in problems)
    with pytest.raises(HrmEdgeError, match="needs opset >= 19"):
        qdq_fp16_body(model(17))
