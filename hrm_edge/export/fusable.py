"""Normalisations written the way runtimes' fusion passes look for them.

The TorchScript exporter writes `x.square()` as Mul(x, x) and `torch.rsqrt(v)` as Div(1, Sqrt(v))
followed by a Mul. ONNX Runtime's LayerNormFusion (and TensorRT's own normalisation fusion)
match the canonical form instead: Pow(x, 2) -> ReduceMean -> Add(eps) -> Sqrt -> Div(x, sqrt).
`canonical_norms` rewrites those two spots in place, nothing else: the same arithmetic with one
rounding fewer (x / sqrt(v) instead of x * (1 / sqrt(v))), well inside the export's 1e-4 parity
bound. With it ONNX Runtime fuses every lite-family LayerNorm into one LayerNormalization kernel
(checked by tests/test_export_fusable.py against the optimised model). The ACT v1 RMSNorm has no
weight, and ORT's SimplifiedLayerNormFusion wants a scale Mul after the Div, so it stays unfused.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from hrm_edge.graph.links import links

TWO = "hrm_edge/norm_two"


def _scalar(graph: onnx.GraphProto, name: str) -> float | None:
    for t in graph.initializer:
        if t.name == name:
            a = numpy_helper.to_array(t)
            return float(a.reshape(-1)[0]) if a.size == 1 else None
    for n in graph.node:
        if n.op_type == "Constant" and name in n.output:
            a = numpy_helper.to_array(n.attribute[0].t)
            return float(a.reshape(-1)[0]) if a.size == 1 else None
    return None


def canonical_norms(model: onnx.ModelProto) -> dict[str, int]:
    """Rewrite the squares and reciprocal square roots of normalisations; returns how many of each."""
    g = model.graph
    producer, consumers = links(g)
    squares = 0
    for n in g.node:
        if n.op_type == "Mul" and len(n.input) == 2 and n.input[0] == n.input[1] and \
                consumers[n.output[0]] and all(c.op_type == "ReduceMean" for c in consumers[n.output[0]]):
            n.op_type = "Pow"
            n.input[1] = TWO
            squares += 1
    if squares:
        g.initializer.append(numpy_helper.from_array(np.array(2.0, np.float32), TWO))

    def is_norm_sqrt(name: str) -> bool:
        s = producer.get(name)
        if s is None or s.op_type != "Sqrt":
            return False
        a = producer.get(s.input[0])
        return a is not None and a.op_type == "Add" and any(
            (p := producer.get(i)) is not None and p.op_type == "ReduceMean" for i in a.input)

    dead = []
    for n in g.node:
        if n.op_type != "Div" or not is_norm_sqrt(n.input[1]) or _scalar(g, n.input[0]) != 1.0:
            continue
        users = consumers[n.output[0]]
        if len(users) != 1 or users[0].op_type != "Mul":
            continue
        mul = users[0]
        x = mul.input[0] if mul.input[1] == n.output[0] else mul.input[1]
        mul.op_type = "Div"
        del mul.input[:]
        mul.input.extend([x, n.input[1]])
        dead.append(n)
    for n in dead:
        g.node.remove(n)
    return {"squares": squares, "reciprocals": len(dead)}


__all__ = ["canonical_norms"]
