"""The TensorRT op-support lint: tables load, and known-bad graphs are flagged for the right version."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export.trt_ops import TARGETS, lint, lint_all, load_table


def graph(nodes: list[onnx.NodeProto], inputs: list, outputs: list, inits: list | None = None,
          opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "t", inputs, outputs, initializer=inits or [])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)


def layernorm_graph(opset: int = 17) -> onnx.ModelProto:
    scale = helper.make_tensor("s", TensorProto.FLOAT, [8], [1.0] * 8)
    bias = helper.make_tensor("b", TensorProto.FLOAT, [8], [0.0] * 8)
    return graph([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)], [X], [Y],
                 [scale, bias], opset)


def test_tables_have_sources_and_core_ops() -> None:
    for t in ("trt-8.5", "trt-10"):
        table = load_table(t)
        assert table["source"]["repo"].endswith("onnx-tensorrt") and len(table["source"]["commit"]) == 40
        for op in ("MatMul", "Softmax", "ReduceMean", "Where", "Loop", "Expand", "Gather"):
            assert table["ops"][op]["supported"], (t, op)
    assert load_table("trt-8.5")["opset_max"] == 17
    assert load_table("trt-8.5")["ops"]["LayerNormalization"]["supported"] is False
    assert load_table("trt-10")["ops"]["LayerNormalization"]["supported"] is True


def test_layernorm_blocks_trt85_only() -> None:
    m = layernorm_graph()
    r85, r10 = lint(m, "trt-8.5"), lint(m, "trt-10")
    assert not r85.ok and "LayerNormalization" in r85.blocking_ops
    assert r10.ok


def test_opset_above_parser_maximum() -> None:
    m = graph([helper.make_node("Relu", ["x"], ["y"])], [X], [Y], opset=18)
    assert "<opset>" in lint(m, "trt-8.5").blocking_ops
    assert lint(m, "trt-10").ok


def test_shape_start_end_unsupported_on_trt85() -> None:
    out = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    m = graph([helper.make_node("Shape", ["x"], ["y"], start=0, end=1)], [X], [out])
    r = lint(m, "trt-8.5")
    assert not r.ok and "Shape" in r.blocking_ops and "start" in r.errors[0]
    assert lint(m, "trt-10").ok


def test_computed_axes_are_rejected() -> None:
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    m = graph([helper.make_node("Unsqueeze", ["x", "axes"], ["y"])], [X, axes], [Y])
    assert "Unsqueeze" in lint(m, "trt-8.5").blocking_ops
    const = helper.make_tensor("axes_c", TensorProto.INT64, [1], [0])
    ok = graph([helper.make_node("Unsqueeze", ["x", "axes_c"], ["y"])], [X], [Y], [const])
    assert lint(ok, "trt-8.5").ok


def test_int8_ops_and_custom_domains_blocked() -> None:
    n = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    m = graph([n], [X], [helper.make_tensor_value_info("y", TensorProto.UINT8, None)])
    assert "DynamicQuantizeLinear" in lint(m, "trt-8.5").blocking_ops
    c = graph([helper.make_node("FusedMatMul", ["x", "x"], ["y"], domain="com.microsoft")], [X], [Y])
    c.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert any("com.microsoft" in k for k in lint(c, "trt-10").blocking_ops)


def test_lint_walks_loop_bodies() -> None:
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("LayerNormalization", ["v_in", "s", "b"], ["v_out"], axis=-1)], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [2, 8])])
    inits = [helper.make_tensor("M", TensorProto.INT64, [], [2]), helper.make_tensor("C", TensorProto.BOOL, [], [1]),
             helper.make_tensor("s", TensorProto.FLOAT, [8], [1.0] * 8),
             helper.make_tensor("b", TensorProto.FLOAT, [8], [0.0] * 8)]
    m = graph([helper.make_node("Loop", ["M", "C", "x"], ["y"], body=body)], [X], [Y], inits)
    assert "LayerNormalization" in lint(m, "trt-8.5").blocking_ops


def test_ort_target_and_unknown_target() -> None:
    assert lint(layernorm_graph(), "ort").ok
    assert set(lint_all(layernorm_graph())) == set(TARGETS)
    with pytest.raises(HrmEdgeError):
        load_table("trt-7")


def test_io_int64_is_a_warning_on_trt85() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [2])
    r = lint(graph([helper.make_node("Identity", ["x"], ["y"])], [x], [y]), "trt-8.5")
    assert r.ok and any("INT64" in w for w in r.warnings)
