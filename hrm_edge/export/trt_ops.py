"""Will this graph parse? The op-support lint for a deployment target.

The knowledge lives as data in the top-level `export/trt_ops/*.json` (one table per TensorRT
version, built from onnx-tensorrt's docs/operators.md with sources noted; see its README). The
lint walks every node, subgraphs included, and reports:
- errors: an op the parser does not support, a default-domain opset above the table's maximum,
  an input the parser needs as a constant that is computed, an attribute it ignores or rejects, a
  custom-domain op;
- warnings: a node dtype outside the docs' "Supported Types" (the docs are narrower than the
  importer in places, so these do not block), INT64 tensors TensorRT 8.5 casts down to INT32.
Target `ort` has no table: ONNX Runtime itself loading the graph is the check (parity L3 does).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import read_json

TARGETS = ("trt-8.5", "trt-10", "ort")
TRT_TARGETS = ("trt-8.5", "trt-10")

_DTYPE = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
          TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.INT8: "INT8",
          TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL", TensorProto.DOUBLE: "DOUBLE"}


def export_dir() -> Path:
    """The top-level `export/` folder (tables and profiles).

    $HRM_EDGE_EXPORT_DIR when set; else the source checkout's own `export/` (editable installs);
    else the copy a wheel installs under `<prefix>/share/hrm-edge/export`.
    """
    env = os.environ.get("HRM_EDGE_EXPORT_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "export"
    if (repo / "trt_ops").is_dir():
        return repo
    return Path(sys.prefix) / "share" / "hrm-edge" / "export"


@lru_cache(maxsize=8)
def load_table(target: str) -> dict[str, Any]:
    if target not in TRT_TARGETS:
        raise HrmEdgeError(f"no operator table for target {target!r}; tables exist for {', '.join(TRT_TARGETS)}")
    path = export_dir() / "trt_ops" / f"{target}.json"
    if not path.exists():
        raise HrmEdgeError("TensorRT operator table not found (set HRM_EDGE_EXPORT_DIR to the repo's export/ "
                           "folder)", path)
    return read_json(path, "operator table")


@dataclass
class LintResult:
    target: str
    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    blocking_ops: dict[str, str] = field(default_factory=dict)  # op type -> first reason it blocks
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "blocking_ops": self.blocking_ops,
                "errors": self.errors[:50], "warnings": sorted(set(self.warnings))[:50], "source": self.source}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every named tensor, from shape inference (subgraphs included)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - L1 reports inference failures itself; lint works with what it has
        inferred = model
    types: dict[str, int] = {}

    def walk(g: onnx.GraphProto) -> None:
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.HasField("tensor_type"):
                types[vi.name] = vi.type.tensor_type.elem_type
        for t in g.initializer:
            types[t.name] = t.data_type
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                if n.op_type == "Constant" and a.name == "value":
                    types[n.output[0]] = a.t.data_type

    walk(inferred.graph)
    return types


def _node_dtype(node: onnx.NodeProto, types: dict[str, int]) -> int | None:
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Cast":
        return attrs["to"].i if "to" in attrs else None
    if node.op_type in ("Constant", "ConstantOfShape"):
        return attrs["value"].t.data_type if "value" in attrs else TensorProto.FLOAT
    if node.op_type == "Where" and len(node.input) > 1:
        return types.get(node.input[1])
    if node.op_type in ("Loop", "If", "Scan"):
        return None
    if node.input and node.input[0]:
        return types.get(node.input[0])
    return types.get(node.output[0]) if node.output else None


def lint(model: onnx.ModelProto, target: str) -> LintResult:
    """Check every node against the target's parser table (see the module docstring)."""
    if target == "ort":
        return LintResult("ort", True, source="ONNX Runtime loads the graph (checked at parity L3)")
    table = load_table(target)
    src = table["source"]
    res = LintResult(target, True, source=f"{src['repo']} {src['file']} @ {src['ref']} ({src['commit'][:8]})")
    ops: dict[str, Any] = table["ops"]
    cast_down = "cast down" in str(table.get("int64", ""))
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if imp.version > table["opset_max"]:
                res.errors.append(f"opset {imp.version} > {table['opset_max']}, the newest TensorRT "
                                  f"{table['trt_version']} parses")
                res.blocking_ops["<opset>"] = f"opset {imp.version} > {table['opset_max']}"
            elif imp.version < table.get("opset_min", 1):
                res.warnings.append(f"opset {imp.version} is below {table['opset_min']}")
    types = _types(model)
    io_types = set(table.get("io_types", []))
    for vi in list(model.graph.input) + list(model.graph.output):
        name = _DTYPE.get(vi.type.tensor_type.elem_type, str(vi.type.tensor_type.elem_type))
        if name == "INT64" and cast_down:
            res.warnings.append(f"graph I/O {vi.name!r} is INT64: TensorRT {table['trt_version']} imports it as INT32")
        elif io_types and name not in io_types:
            res.errors.append(f"graph I/O {vi.name!r} has type {name}, not a TensorRT {table['trt_version']} I/O type")
            res.blocking_ops.setdefault(f"<io:{vi.name}>", f"type {name}")

    def block(op: str, msg: str) -> None:
        res.errors.append(msg)
        res.blocking_ops.setdefault(op, msg)

    def walk(g: onnx.GraphProto, consts: set[str]) -> None:
        consts = consts | {t.name for t in g.initializer} | {n.output[0] for n in g.node if n.op_type == "Constant"}
        for node in g.node:
            where = node.name or node.op_type
            if node.domain not in ("", "ai.onnx"):
                block(f"{node.domain}::{node.op_type}", f"{where}: custom-domain op {node.domain}::{node.op_type} "
                                                        "is not parsed by TensorRT")
                continue
            entry = ops.get(node.op_type)
            if entry is None or not entry.get("supported"):
                block(node.op_type, f"{where}: {node.op_type} is not supported by TensorRT {table['trt_version']}")
                continue
            for attr in entry.get("unsupported_attrs", []):
                if any(a.name == attr for a in node.attribute):
                    block(node.op_type, f"{where}: {node.op_type} attribute `{attr}` is not handled by TensorRT "
                                        f"{table['trt_version']} ({entry.get('notes', '')[:80]})")
            for label, idx in entry.get("const_inputs", {}).items():
                if idx < len(node.input) and node.input[idx] and node.input[idx] not in consts:
                    block(node.op_type, f"{where}: {node.op_type} input `{label}` must be an initializer/constant "
                                        f"for TensorRT {table['trt_version']} ({entry.get('restrictions', '')})")
            dt = _node_dtype(node, types)
            allowed = entry.get("types")
            if dt is not None and allowed:
                name = _DTYPE.get(dt, str(dt))
                if name == "INT64" and cast_down:
                    name = "INT32"
                if name not in allowed:
                    res.warnings.append(f"{node.op_type} on {_DTYPE.get(dt, dt)}: not in the documented types "
                                        f"{', '.join(allowed)}")
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g, consts)

    walk(model.graph, set())
    res.ok = not res.errors
    return res


def lint_all(model: onnx.ModelProto) -> dict[str, LintResult]:
    return {t: lint(model, t) for t in TARGETS}


__all__ = ["TARGETS", "TRT_TARGETS", "LintResult", "lint", "lint_all", "load_table", "export_dir"]
