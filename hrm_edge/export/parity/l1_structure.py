"""L1 structure: `onnx.checker` full check, strict shape inference, the opset asked for, and the op-support
lint of the chosen target (trt_ops.py); every target's lint is recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

import hrm_edge.export.trt_ops as trt_ops
from hrm_edge.export.parity.report import LevelResult


def check_l1(model_path: Path, model: onnx.ModelProto, target: str, opset: int) -> LevelResult:
    details: dict[str, Any] = {}
    try:
        onnx.checker.check_model(str(model_path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - checker raises ValidationError / InferenceError
        return LevelResult("L1", False, f"onnx.checker: {str(exc).splitlines()[0][:300]}", worst_tensor="<graph>")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001
        return LevelResult("L1", False, f"shape inference: {str(exc).splitlines()[0][:300]}", worst_tensor="<graph>")
    untyped = [o.name for o in inferred.graph.output if not o.type.tensor_type.elem_type]
    if untyped:
        return LevelResult("L1", False, f"outputs without an inferred type: {untyped}", worst_tensor=untyped[0])
    got = {i.domain or "ai.onnx": i.version for i in model.opset_import}
    details["opset"] = got.get("ai.onnx")
    if got.get("ai.onnx") != opset:
        return LevelResult("L1", False, f"graph opset {got.get('ai.onnx')} is not the requested {opset}",
                           worst_tensor="<opset>", details=details)
    lints = trt_ops.lint_all(model)
    details["lint"] = {t: r.to_dict() for t, r in lints.items()}
    chosen = lints[target] if target in lints else trt_ops.lint(model, target)
    if not chosen.ok:
        op = next(iter(chosen.blocking_ops), "<op>")
        return LevelResult("L1", False, f"{target} lint: {chosen.errors[0]}", worst_tensor=op, details=details)
    others = ", ".join(f"{t} {'ok' if r.ok else 'BLOCKED by ' + ','.join(r.blocking_ops)}" for t, r in lints.items())
    return LevelResult("L1", True, f"checker+shapes ok, opset {opset}, lint: {others}", details=details)
