"""Precision variants of an exported segment graph: fp16 (GPU / TensorRT) and int8 (CPU, ONNX Runtime).

- fp16: ONNX Runtime's float16 converter with the graph's *fp32 islands* left in fp32: every
  Softmax, and every normalisation with the residual sum feeding it (the ReduceMean statistics,
  the elementwise arithmetic around them, and the Add that builds the residual). Matmuls, RoPE,
  SwiGLU and the weights go to fp16; graph inputs and outputs stay fp32 (`keep_io_types`), so a
  runtime feeds the same arrays as for fp32 and the carry crosses segments in fp32.
- int8: `onnxruntime.quantization.quantize_dynamic` (per-tensor int8 weights in a 7-bit range,
  activations quantized to u8 on the fly) on MatMul/Gemm with constant weights. An ONNX Runtime CPU
  format: TensorRT does not parse DynamicQuantizeLinear / MatMulInteger, and the lint says so. The
  7-bit range (`reduce_range`) keeps u8 x s8 exact on x86 CPUs without VNNI, where ONNX Runtime's
  kernel sums pairs of products in a saturating int16 (runtime/cpu_isa.py): full 8-bit weights lost
  a third to a half of the tiny models' grid cells there, and a bundle must not depend on which CPU
  exported it or runs it.

- int8-qdq: static int8 in standard Q/DQ form (TensorRT explicit quantization), calibrated on real
  puzzles. Its *body* (everything outside the Q/DQ pairs) follows the opset. At opset 17 / 18 (TensorRT
  8.5 parses <= 17) QuantizeLinear / DequantizeLinear take fp32 scales only, so the body stays fp32: a
  weakly typed build (`--int8`) lets TensorRT pick fp16 there itself, a strongly typed one would run it in
  fp32. From opset 19 the scales may be fp16 and a DequantizeLinear outputs its scale's type, so
  `qdq_fp16_body` gives the graph the fp16 body of `to_fp16` (same fp32 islands, fp32 graph I/O) with fp16
  scales: every DequantizeLinear hands fp16 straight to its MatMul, no Cast between them (the DQ -> MatMul
  pattern TensorRT fuses into an int8 GEMM; a DQ -> Cast -> MatMul chain is not that pattern). That is
  what a strongly typed engine (TensorRT 11, 10.x `--strongly-typed`) needs to be int8 + fp16, not
  int8 + fp32, and what NVIDIA's ModelOpt emits for int8 (`high_precision_dtype="fp16"`, opset >= 19).

All transform the *segment* graph (step or ACT body) before the unrolled / loop assembly, so
every weight is still stored once.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx

from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.graph.links import links

PRECISIONS = ("fp32", "fp16", "int8", "int8-qdq")
# matmul groups a static int8 export may leave in fp32 (see `matmul_groups`)
KEEP_GROUPS = ("attention", "heads", "down", "o_proj")
# name parts of the two projections whose inputs are not normalised (the SwiGLU / ReLU product, the attention
# output): on the trained demo model quantizing them costs most of the int8 agreement (benchmarks/README.md)
# (the exporter numbers repeated calls of a module: /o_proj/, /o_proj_1/, ...)
_PROJECTION_NAMES = {"down": re.compile(r"/(down_proj|linear2)(_\d+)?/"),
                     "o_proj": re.compile(r"/(o_proj|out_proj)(_\d+)?/")}
# ops a normalisation is built from (rms_norm / layer_norm of model/layers.py, exported)
_NORM_OPS = {"ReduceMean", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Cast"}
_STAT_OPS = {"Pow", "Mul", "Sub", "ReduceMean", "Cast"}


def fp32_islands(graph: onnx.GraphProto) -> set[str]:
    """Names of nodes kept in fp32: Softmax, normalisations, and the residual sums they read."""
    producer, consumers = links(graph)
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


def _drop_repeated_nodes(graph: onnx.GraphProto) -> int:
    """Remove nodes that repeat an earlier node exactly (same op, inputs, outputs, attributes), and repeated
    value_info entries; returns how many nodes went.

    onnxruntime < 1.32's float16 converter adds one `<x>_cast_to_fp32` Cast per *use* of an fp16 tensor by
    an fp32 island, all writing the same name: a graph the checker rejects (not SSA) wherever one tensor
    feeds two kept nodes (TRM's fp16 export; 1.32 shares the Cast). The repeats are identical, so dropping
    them is exact, and Jetson images that ship an older onnxruntime export the same graph."""
    seen: dict[str, bytes] = {}
    keep, dropped = [], 0
    for n in graph.node:
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                dropped += _drop_repeated_nodes(g)
        key = n.SerializeToString()
        if n.output and all(seen.get(o) == key for o in n.output):
            dropped += 1
            continue
        seen.update((o, key) for o in n.output)
        keep.append(n)
    if dropped:
        del graph.node[:]
        graph.node.extend(keep)
    infos, names = [], set()
    for v in graph.value_info:
        if v.name not in names:
            names.add(v.name)
            infos.append(v)
    if len(infos) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(infos)
    return dropped


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise MissingDependencyError(f"fp16 export needs onnxruntime's float16 converter: {exc}") from None
    _name_nodes(model.graph)
    keep = sorted(fp32_islands(model.graph))
    out = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep, disable_shape_infer=False)
    _drop_repeated_nodes(out.graph)
    out.graph.doc_string = f"fp16 with {len(keep)} fp32 nodes (softmax, normalisation, residual sums)"
    return out


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime.quantization logs advice ("consider pre-processing") on the root logger at WARNING;
    our graphs are already shape-inferred and optimised by the export, so it is noise for a user."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def to_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Dynamic int8 (ONNX Runtime CPU): weights int8 per-tensor in [-64, 64], u8 activations quantized at run time."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(f"int8 export needs onnxruntime.quantization: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="hrm-edge-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, src)
        with _quiet_quantizer():
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                             reduce_range=True, extra_options={"MatMulConstBOnly": True})
        out = onnx.load(dst)
    return out


def matmul_groups(graph: onnx.GraphProto) -> dict[str, list[str]]:
    """MatMul / Gemm node names by role: `weights` (one constant operand: the layers' Linears),
    `attention` (both operands activations: Q K^T and P V) and `heads` (the weight matmuls nearest
    the logits / q outputs: lm_head / output, q_head / halt_predictor); `down` and `o_proj` are
    the subsets of `weights` that are MLP output and attention output projections (by module name).
    Classify the fp32 graph: after quantization a weight arrives through DequantizeLinear and would
    read as an activation."""
    _name_nodes(graph)
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}
    heads: set[str] = set()
    for out in graph.output:
        if out.name not in ("logits", "q_halt", "q_continue") and not out.name.startswith(("logits", "q_")):
            continue
        stack, seen = [out.name], set()
        while stack:
            p = producer.get(stack.pop())
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            if p.op_type in ("MatMul", "Gemm"):
                heads.add(p.name)
            else:
                stack.extend(p.input)
    groups: dict[str, list[str]] = {"weights": [], "attention": [], "heads": [], "down": [], "o_proj": []}
    for n in graph.node:
        if n.op_type not in ("MatMul", "Gemm"):
            continue
        if n.name in heads:
            groups["heads"].append(n.name)
        elif any(i in consts for i in n.input[:2]):
            groups["weights"].append(n.name)
            for k, pattern in _PROJECTION_NAMES.items():
                if pattern.search(n.name):
                    groups[k].append(n.name)
        else:
            groups["attention"].append(n.name)
    return groups


class _Feeds:
    """onnxruntime.quantization CalibrationDataReader over an iterator of feeds."""

    def __init__(self, feeds: Any) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)


CALIB_METHODS = ("minmax", "percentile", "entropy", "distribution")


def to_int8_qdq(model: onnx.ModelProto, feeds: Any, *, per_channel: bool = True,
                keep_fp32: tuple[str, ...] = ("heads",), calibrate_method: Any = "minmax",
                percentile: float | None = None, exclude_nodes: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Static int8 in QDQ format, calibrated (MinMax by default) on `feeds` (an iterable of graph feeds).

    Standard QuantizeLinear / DequantizeLinear only, int8 with zero point 0 for weights *and*
    activations (symmetric), so TensorRT's explicit-quantization parser takes the same artifact
    that ONNX Runtime runs with its int8 kernels. Only MatMul / Gemm are quantized: norms, softmax,
    RoPE and residual sums stay fp32. `keep_fp32` names matmul groups of `matmul_groups` left in
    fp32 too; `per_channel` gives every weight column its own scale. `calibrate_method` is one of
    CALIB_METHODS (or an `onnxruntime.quantization.CalibrationMethod`); `percentile` sets the
    Percentile method's cut (ONNX Runtime's default 99.999), taken on |x| as the activations are
    symmetric. `exclude_nodes` names further MatMul / Gemm nodes left in fp32 (sensitivity studies).
    """
    try:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError(f"int8-qdq export needs onnxruntime.quantization: {exc}") from None
    bad = [k for k in keep_fp32 if k not in KEEP_GROUPS]
    if bad:
        raise HrmEdgeError(f"matmul groups kept in fp32 must be among {', '.join(KEEP_GROUPS)}, got {', '.join(bad)}")
    if isinstance(calibrate_method, CalibrationMethod):
        method = calibrate_method
    elif str(calibrate_method).lower() in CALIB_METHODS:
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy,
                  "distribution": CalibrationMethod.Distribution}[str(calibrate_method).lower()]
    else:
        raise HrmEdgeError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, got {calibrate_method!r}")
    calib_extra: dict[str, Any] = {}
    if method == CalibrationMethod.Percentile:
        calib_extra["CalibTensorRangeSymmetric"] = True  # histogram of |x|: one cut for a symmetric range
        if percentile is not None:
            calib_extra["CalibPercentile"] = float(percentile)
    groups = matmul_groups(model.graph)
    exclude = list(dict.fromkeys(n for k in keep_fp32 for n in groups[k]))
    exclude += [n for n in exclude_nodes if n not in exclude]
    with tempfile.TemporaryDirectory(prefix="hrm-edge-qdq-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(model, src)
        import onnxruntime as ort

        ort.set_default_logger_severity(3)  # the calibration session's "removing unused initializer" warnings
        try:
            with _quiet_quantizer():
                quantize_static(src, dst, _Feeds(feeds), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
                                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=exclude, calibrate_method=method,
                                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                               "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}, **calib_extra})
        finally:
            ort.set_default_logger_severity(2)  # back to onnxruntime's default (warnings)
        out = onnx.load(dst)
    kept = ", ".join(keep_fp32) or "none"
    how = "" if method == CalibrationMethod.MinMax else f", {method.name} calibration"
    out.graph.doc_string = (f"static int8 QDQ ({'per-channel' if per_channel else 'per-tensor'} weights, symmetric "
                            f"activations{how}); fp32 matmul groups: {kept}; {len(set(exclude))} of "
                            f"{len({n for k in ('weights', 'attention', 'heads') for n in groups[k]})} matmuls "
                            f"kept in fp32")
    return out


QDQ_FP16_MIN_OPSET = 19  # QuantizeLinear / DequantizeLinear take fp16 scales (and DQ outputs fp16) from opset 19


def default_opset(graph_or_model: Any) -> int:
    """The default-domain opset a model imports."""
    model = graph_or_model
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def qdq_body(opset: int) -> str:
    """The body an int8-qdq export gets at this opset: "fp16" from QDQ_FP16_MIN_OPSET, else "fp32"."""
    return "fp16" if opset >= QDQ_FP16_MIN_OPSET else "fp32"


def qdq_fp16_body(model: onnx.ModelProto) -> onnx.ModelProto:
    """An int8 Q/DQ graph with fp32 scales -> fp16 outside the Q/DQ pairs, fp16 scales (opset >= 19).

    The float16 converter of `to_fp16` with the same fp32 islands (softmax, norms, residual sums) and fp32
    graph I/O, run with Q/DQ *not* blocked: their fp32 scale initializers become fp16, so each
    DequantizeLinear outputs fp16 and feeds its MatMul directly; a QuantizeLinear reading an fp32 island
    gets the converter's Cast before it, outside the pair. The int8 weights and zero points are untouched.
    `qdq_cast_problems` checks the result.
    """
    opset = default_opset(model)
    if opset < QDQ_FP16_MIN_OPSET:
        raise HrmEdgeError(f"an int8-qdq fp16 body needs opset >= {QDQ_FP16_MIN_OPSET} (fp16 Q/DQ scales); this graph "
                           f"is opset {opset}")
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as exc:  # pragma: no cover - onnxruntime is installed for export
        raise MissingDependencyError(f"the int8-qdq fp16 body needs onnxruntime's float16 converter: {exc}") from None
    _name_nodes(model.graph)
    keep = sorted(fp32_islands(model.graph))
    doc = model.graph.doc_string
    out = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep, disable_shape_infer=False)
    problems = qdq_cast_problems(out)
    if problems:  # a converter that casts around Q/DQ would leave an fp32 int8 GEMM: refuse rather than ship it
        raise HrmEdgeError("int8-qdq fp16 body: " + "; ".join(problems[:3]))
    out.graph.doc_string = f"{doc}; fp16 body with {len(keep)} fp32 nodes (softmax, normalisation, residual sums)"
    return out


def qdq_cast_problems(model: onnx.ModelProto) -> list[str]:
    """What keeps an fp16-body Q/DQ graph from TensorRT's DQ -> MatMul fusion: a scale that is not fp16, or a
    Cast between a DequantizeLinear and a MatMul / Gemm it feeds."""
    inits = {t.name: t for t in model.graph.initializer}
    producer, consumers = links(model.graph)
    out = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            scale = inits.get(n.input[1])
            if scale is None or scale.data_type != onnx.TensorProto.FLOAT16:
                out.append(f"{n.name}: scale {n.input[1]} is not an fp16 initializer")
        if n.op_type == "DequantizeLinear":  # a Cast to fp32 for an island consumer (residual Add) is no matmul's
            for c in consumers.get(n.output[0], []):
                if c.op_type == "Cast" and any(m.op_type in ("MatMul", "Gemm") for m in consumers.get(c.output[0], [])):
                    out.append(f"{n.name} -> Cast {c.name} -> MatMul")
    return out


def transform_for(precision: str, calib: Any = None, **qdq: Any) -> Any:
    """The segment-graph transform of a precision; int8-qdq needs `calib(model) -> feeds` (see export/calib.py)
    and gets an fp16 body (`qdq_fp16_body`) when the graph's opset allows it."""
    if precision not in PRECISIONS:
        raise HrmEdgeError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8-qdq":
        if calib is None:
            raise HrmEdgeError("int8-qdq needs calibration puzzles (--calib TASKS)")

        def qdq_transform(model: onnx.ModelProto) -> onnx.ModelProto:
            out = to_int8_qdq(model, calib(model), **qdq)
            return qdq_fp16_body(out) if qdq_body(default_opset(model)) == "fp16" else out

        return qdq_transform
    return {"fp32": None, "fp16": to_fp16, "int8": to_int8}[precision]


__all__ = ["PRECISIONS", "KEEP_GROUPS", "CALIB_METHODS", "QDQ_FP16_MIN_OPSET", "fp32_islands", "matmul_groups",
           "to_fp16", "to_int8", "to_int8_qdq", "qdq_body", "qdq_fp16_body", "qdq_cast_problems", "default_opset",
           "transform_for"]
