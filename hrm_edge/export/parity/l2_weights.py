"""L2 weights: every tensor of the checkpoint's state dict reaches the graph as an initializer a live node
reads (value-identical or its transpose; fp16 / int8 within their rounding), and `puzzle_emb.npy` equals the
checkpoint's table in the bundle's dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from hrm_edge.export.parity.report import LevelResult


def _graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    out = [g]
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                out += _graphs(a.g)
    return out


def _live_names(model: onnx.ModelProto) -> set[str]:
    from hrm_edge.graph.links import subgraph_inputs

    needed = {o.name for o in model.graph.output}
    for node in reversed(model.graph.node):
        if any(o in needed for o in node.output):
            needed |= subgraph_inputs(node)
    return needed


def expected_weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The state dict as the graph should hold it (the puzzle table lives outside the graph)."""
    return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items() if k != "puzzle_emb.weights"}


def check_l2(model: onnx.ModelProto, torch_model: torch.nn.Module, precision: str, bundle: Path,
             manifest: dict[str, Any]) -> LevelResult:
    live = _live_names(model)
    exact: dict[tuple[int, ...], list[np.ndarray]] = {}
    # dequantized weight, its scale, and the slack an fp16 scale adds (int8-qdq fp16 body: the quantizer rounded
    # with the fp32 scale, the graph multiplies by its fp16 rounding, off by <= 2^-11 relative, 2^-25 subnormal)
    quant: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray, np.ndarray | float]]] = {}
    inits = {t.name: t for g in _graphs(model.graph) for t in g.initializer}
    axis_of = {n.input[0]: next((a.i for a in n.attribute if a.name == "axis"), 1)
               for g in _graphs(model.graph) for n in g.node if n.op_type == "DequantizeLinear"}
    for name, t in inits.items():
        if name not in live:
            continue
        arr = onnx.numpy_helper.to_array(t)
        if name.endswith("_quantized") and arr.dtype in (np.int8, np.uint8, np.int32):  # int32: a QDQ bias
            base = name[: -len("_quantized")]
            s, z = inits.get(base + "_scale"), inits.get(base + "_zero_point")
            if s is None:  # QDQ names a bias's scale after the quantized tensor
                s, z = inits.get(name + "_scale"), inits.get(name + "_zero_point")
            if s is not None and z is not None:
                scale = onnx.numpy_helper.to_array(s).astype(np.float32)
                zp = onnx.numpy_helper.to_array(z).astype(np.float32)
                if scale.ndim == 1 and arr.ndim > 1:  # per-channel: one scale per slice along the DQ's axis
                    shape = [1] * arr.ndim
                    shape[axis_of.get(name, 1) % arr.ndim] = -1
                    scale, zp = scale.reshape(shape), zp.reshape(shape)
                codes = arr.astype(np.float32) - zp
                slack = np.abs(codes) * (scale * 2.0**-11 + 2.0**-25) if s.data_type == onnx.TensorProto.FLOAT16 \
                    else 0.0
                quant.setdefault(arr.shape, []).append((codes * scale, scale, slack))
            continue
        if arr.dtype in (np.float32, np.float16):
            exact.setdefault(arr.shape, []).append(arr)
    found, missing = 0, []
    for key, want in expected_weights(torch_model).items():
        ok = False
        for cand in [want] + ([want.T] if want.ndim == 2 else []):
            shp = cand.shape
            for arr in exact.get(shp, []):
                if arr.dtype == np.float16:  # rounded to fp16; the converter lifts |x| < 6e-8 to +-6e-8
                    close = np.abs(arr.astype(np.float32) - cand) <= np.abs(cand) * 2.0**-10 + 6e-8
                    if bool(close.all()):
                        ok = True
                        break
                elif np.array_equal(arr, cand):
                    ok = True
                    break
            if not ok and precision in ("int8", "int8-qdq"):
                for deq, scale, slack in quant.get(shp, []):
                    if np.all(np.abs(deq - cand) <= 0.51 * np.max(scale) + slack + 1e-7):
                        ok = True
                        break
            if ok:
                break
        if ok:
            found += 1
        else:
            missing.append(key)
    details: dict[str, Any] = {"tensors": found + len(missing), "found": found, "missing": missing[:20],
                               "initializers": len(inits)}
    pe = manifest.get("puzzle_emb")
    table = getattr(getattr(torch_model, "puzzle_emb", None), "weights", None)
    if pe:
        stored = np.load(bundle / pe["file"])
        want = table.detach().float().cpu().numpy().astype(stored.dtype) if table is not None else None
        if want is None or stored.shape != want.shape or not np.array_equal(stored, want):
            missing.append("puzzle_emb.weights")
            details["puzzle_emb"] = "puzzle_emb.npy does not equal the checkpoint's table"
        else:
            details["puzzle_emb"] = f"{stored.shape[0]} rows x {stored.shape[1]} ({stored.dtype}) equal"
    if missing:
        return LevelResult("L2", False, f"{len(missing)} checkpoint tensor(s) not found in the graph: "
                                        f"{', '.join(missing[:5])}", worst_tensor=missing[0], details=details)
    return LevelResult("L2", True, f"all {found} state-dict tensors reach the graph"
                                   + (" and puzzle_emb.npy matches" if pe else ""), details=details)
