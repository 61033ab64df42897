"""Precision variants of an exported segment graph: fp16 (GPU / TensorRT) and int8 (CPU, ONNX Runtime).

- fp16: ONNX Runtime's float16 converter with the graph's *fp32 islands* left in fp32: every
  Softmax, and every normalisation with the residual sum feeding it (the ReduceMean statistics,
  the elementwise arithmetic around them, and the Add that builds the residual). Matmuls, RoPE,
  SwiGLU and the weights go to fp16; graph inputs and outputs stay fp32 (`keep_io_types`), so a
  runtime feeds the same arrays as for fp32 and the carry crosses segments in fp32.
- int8: `onnxruntime.quantization.quantize_dynamic` (per-tensor int8 weights, activations quantized
  on the fly) on MatMul/Gemm with constant weights. An ONNX Runtime CPU format: TensorRT does
  not parse DynamicQuantizeLinear / MatMulInteger, and the lint says so.

Both transform the *segment* graph (step or ACT body) before the unrolled / loop assembly, so
every weight is still stored once.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import onnx

from hrm_edge.errors import HrmEdgeError, MissingDependencyError

PRECISIONS = ("fp32", "fp16", "int8")
# ops a normalisation is built from (rms_norm / layer_norm of model/layers.py, exported)
_NORM_OPS = {"ReduceMean", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Cast"}
_STAT_OPS = {"Pow", "Mul", "Sub", "ReduceMean", "Cast"}


def fp32_islands(graph: onnx.GraphProto) -> set[str]:
    """Names of nodes kept in fp32: Softmax, normalisations, and the residual sums they read."""
    producer: dict[str, onnx.NodeProto] = {}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in graph.node:
        for o in n.output:
            producer[o] = n
        for i in n.input:
            consumers[i].append(n)
    keep: set[str] = set()
    for n in graph.node:
        if n.op_type == "Softmax":
            keep.add(n.name)
        if n.op_type != "ReduceMean":
            continue
        keep.add(n.name)
        # backwards: the statistic's inputs, up to and including the residual Add
        stack = list(n.input)
        while stack:
            p = producer.get(stack.pop())
            if p is None or p.name in keep:
                continue
            if p.op_type == "Add":
                keep.add(p.name)
            elif p.op_type in _STAT_OPS:
                keep.add(p.name)
                stack.extend(p.input)
        # forwards: the normalisation's arithmetic (scale, shift) until a matmul or reshape
        front = [n]
        while front:
            cur = front.pop()
            for o in cur.output:
                for c in consumers.get(o, []):
                    if c.name not in keep and c.op_type in _NORM_OPS:
                        keep.add(c.name)
                        front.append(c)
    return keep


def _name_nodes(graph: onnx.GraphProto) -> None:
    seen: set[str] = set()
    for i, n in enumerate(graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise MissingDependencyError(f"fp16 export needs onnxruntime's float16 converter: {exc}") from None
    _name_nodes(model.graph)
    keep = sorted(fp32_islands(model.graph))
    out = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep, disable_shape_infer=False)
    out.graph.doc_string = f"fp16 with {len(keep)} fp32 nodes (softmax, normalisation, residual sums)"
    return out


def to_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(f"int8 export needs onnxruntime.quantization: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="hrm-edge-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         extra_options={"MatMulConstBOnly": True})
        out = onnx.load(dst)
    return out


def transform_for(precision: str) -> Any:
    if precision not in PRECISIONS:
        raise HrmEdgeError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {"fp32": None, "fp16": to_fp16, "int8": to_int8}[precision]


__all__ = ["PRECISIONS", "fp32_islands", "to_fp16", "to_int8", "transform_for"]
