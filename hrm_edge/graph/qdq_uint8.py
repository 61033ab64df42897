"""int8 Q/DQ activations re-expressed as uint8 for ONNX Runtime: a graph rewrite the ORT runner applies at load.

The bundle keeps the symmetric int8 Q/DQ that TensorRT requires (export/precision.py writes it); ONNX
Runtime's x86 int8 kernels are u8 x s8, so the runner rewrites activation zero points in memory. Here,
below both rooms, so the runtime never imports export.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def activations_to_uint8(model: onnx.ModelProto) -> int:
    """Re-express symmetric int8 activation Q/DQ pairs as uint8 with zero point 128, in place; returns how many.

    Exact: round(x / s) + 128 clamped to [0, 255] is the int8 code plus 128, and DequantizeLinear
    subtracts the zero point again. It changes only which kernels ONNX Runtime picks: its x86 int8
    matmuls are u8 x s8 (VNNI `vpdpbusd`), while s8 x s8 falls back to slow paths or stays unfused
    (measured in benchmarks/README.md). The bundle keeps the int8 form TensorRT requires; the ORT
    runner applies this when it loads an int8-qdq model. Weights (DQ of an initializer) stay int8.
    """
    inits = {i.name: i for i in model.graph.initializer}
    from_init: set[str] = set()  # zero points that also dequantize a constant (weights): leave them
    q_zps: set[str] = set()
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2:
            q_zps.add(n.input[2])
        elif n.op_type == "DequantizeLinear" and len(n.input) > 2 and n.input[0] in inits:
            from_init.add(n.input[2])
    count, changed = 0, set()
    for name in sorted(q_zps - from_init):
        t = inits.get(name)
        if t is None or t.data_type != onnx.TensorProto.INT8:
            continue
        zp = numpy_helper.to_array(t).astype(np.int16) + 128
        t.CopyFrom(numpy_helper.from_array(zp.astype(np.uint8), name))
        changed.add(name)
        count += 1
    # a graph that carries inferred types (the int8-qdq fp16 body does) must say uint8 for those codes too
    codes = {n.output[0] for n in model.graph.node
             if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in changed}
    for vi in model.graph.value_info:
        if vi.name in codes and vi.type.tensor_type.elem_type == onnx.TensorProto.INT8:
            vi.type.tensor_type.elem_type = onnx.TensorProto.UINT8
    return count


__all__ = ["activations_to_uint8"]
