"""ONNX Runtime-only graph rewrites, applied in memory when the ORT runner loads a bundle.

The bundle on disk keeps standard opset-17 ops, because that is what TensorRT 8.5 parses; these
rewrites give ONNX Runtime's CPU provider the kernels it has for the same arithmetic (measured in
benchmarks/README.md, "What each optimisation bought"):
- attention: MatMul(Q * c, K^T * c) -> Softmax -> MatMul(P, V) -> Transpose -> Reshape becomes one
  contrib `MultiHeadAttention` (flash attention on CPU: the 901 x 901 score matrix per head is never
  written out; as standard ops those products are memory-bound at about half the GEMM rate);
- RoPE: x * cos + cat(-x[h:], x[:h]) * sin (two Slices, Neg, Concat, two Muls, Add over every head)
  becomes one `RotaryEmbedding` with the graph's own tables;
- split projections: MatMul(x, W) -> Split(last axis, constant sizes) (SwiGLU's gate and up) becomes
  one MatMul per part with the matching columns of W, so no copy of the projection is made.
Q and K arrive already scaled, so the attention kernel's scale is 1. Numerics: the same products and
sums in another order (~1e-5 over an ACT run, inside the export's 1e-4 parity bound;
tests/test_ort_fusions.py). The parity ladder runs the rewritten graph, as the runner does.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hrm_edge.graph.links import links, prune

MS_DOMAIN = "com.microsoft"


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _match(sm: onnx.NodeProto, producer: dict[str, onnx.NodeProto],
           consumers: dict[str, list[onnx.NodeProto]]) -> list[onnx.NodeProto] | None:
    """[scores MatMul, Softmax, context MatMul, Transpose, Reshape] around one Softmax, or None."""
    if _attr(sm, "axis", -1) not in (-1, 3):
        return None
    scores = producer.get(sm.input[0])
    if scores is None or scores.op_type != "MatMul" or len(consumers[scores.output[0]]) != 1:
        return None
    users = consumers[sm.output[0]]
    if len(users) != 1 or users[0].op_type != "MatMul" or users[0].input[0] != sm.output[0]:
        return None
    context = users[0]
    users = consumers[context.output[0]]
    if len(users) != 1 or users[0].op_type != "Transpose" or list(_attr(users[0], "perm", [])) != [0, 2, 1, 3]:
        return None
    transpose = users[0]
    users = consumers[transpose.output[0]]
    if len(users) != 1 or users[0].op_type != "Reshape":
        return None
    return [scores, sm, context, transpose, users[0]]


def fuse_attention(model: onnx.ModelProto, num_heads: int) -> int:
    """Replace every matched attention block by MultiHeadAttention, in place; returns how many.

    The match is structural: the scores MatMul's operands are [B, H, S, D] and [B, H, D, S] (that is
    what a 4-D MatMul feeding a last-axis Softmax and then P @ V, Transpose(0, 2, 1, 3) and a Reshape
    to [B, S, H * D] means), so K is brought back to [B, S, H * D] with Transpose(0, 3, 1, 2).
    Subgraphs (the Loop body of a loop bundle) are rewritten too.
    """
    count = _fuse_graph(model.graph, num_heads, "hrm_edge/attn")
    if count and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return count


def _fuse_graph(g: onnx.GraphProto, num_heads: int, prefix: str) -> int:
    count = 0
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                count += _fuse_graph(a.g, num_heads, f"{prefix}/{n.name or n.op_type}")
    producer, consumers = links(g)
    blocks = [b for n in g.node if n.op_type == "Softmax" and (b := _match(n, producer, consumers))]
    if not blocks:
        return count
    shape_3d = f"{prefix}/shape_3d"
    g.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), shape_3d))
    dead: set[str] = set()  # by first output: every node's outputs are unique in a graph
    for k, (scores, _, context, _, reshape) in enumerate(blocks):
        p = f"{prefix}{k}"
        q, kt = scores.input
        v = context.input[1]
        new = []
        for name, x, perm in (("q", q, [0, 2, 1, 3]), ("k", kt, [0, 3, 1, 2]), ("v", v, [0, 2, 1, 3])):
            new.append(helper.make_node("Transpose", [x], [f"{p}/{name}_bshd"], perm=perm, name=f"{p}/{name}_t"))
            new.append(helper.make_node("Reshape", [f"{p}/{name}_bshd", shape_3d], [f"{p}/{name}3"],
                                        name=f"{p}/{name}_r"))
        new.append(helper.make_node("MultiHeadAttention", [f"{p}/q3", f"{p}/k3", f"{p}/v3"], [reshape.output[0]],
                                    domain=MS_DOMAIN, num_heads=num_heads, scale=1.0, name=f"{p}/mha"))
        at = next(i for i, n in enumerate(g.node) if n is context)  # q, k and v all exist by then
        for n in reversed(new):
            g.node.insert(at, n)
        dead.update(n.output[0] for n in blocks[k])
    keep = [n for n in g.node if not (n.output and n.output[0] in dead and n.op_type != "MultiHeadAttention")]
    del g.node[:]
    g.node.extend(keep)
    _drop_stale_value_info(g)
    return count + len(blocks)


def _const(g: onnx.GraphProto, name: str) -> np.ndarray | None:
    for t in g.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    return None


def _rope_match(add: onnx.NodeProto, g: onnx.GraphProto, producer: dict[str, onnx.NodeProto]
                ) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(x, cos half-table, sin half-table) when `add` is x * cos + cat(-x[..., h:], x[..., :h]) * sin."""
    if len(add.input) != 2:
        return None
    muls = [producer.get(i) for i in add.input]
    if any(m is None or m.op_type != "Mul" for m in muls):
        return None
    found: dict[str, tuple[str, np.ndarray]] = {}
    for m in muls:
        for a, b in ((m.input[0], m.input[1]), (m.input[1], m.input[0])):
            table = _const(g, b)
            if table is not None and table.ndim == 3 and table.shape[1] == 1:
                kind = "rot" if (p := producer.get(a)) is not None and p.op_type == "Concat" else "x"
                found[kind] = (a, table)
                break
    if set(found) != {"x", "rot"}:
        return None
    (x, cos), (rot, sin) = found["x"], found["rot"]
    cat = producer[rot]
    if _attr(cat, "axis") not in (-1, 3) or len(cat.input) != 2:
        return None
    neg, second = producer.get(cat.input[0]), producer.get(cat.input[1])
    if neg is None or neg.op_type != "Neg" or second is None or second.op_type != "Slice":
        return None
    first = producer.get(neg.input[0])
    if first is None or first.op_type != "Slice" or first.input[0] != x or second.input[0] != x:
        return None
    half = cos.shape[-1] // 2
    if cos.dtype != np.float32 or sin.dtype != np.float32:
        return None  # the CPU kernel is fp32 (fp16 bundles are not rewritten)
    if cos.shape != sin.shape or cos.shape[-1] % 2 or not (np.array_equal(cos[..., :half], cos[..., half:])
                                                          and np.array_equal(sin[..., :half], sin[..., half:])):
        return None  # not the rotate-half form with duplicated frequency tables
    return x, cos[:, 0, :half], sin[:, 0, :half]


def fuse_rotary(model: onnx.ModelProto, num_heads: int) -> int:
    """Replace rotate-half RoPE (x * cos + rotate_half(x) * sin over [B, S, H, D]) by `RotaryEmbedding`.

    The exporter writes it as two Slices, Neg, Concat, two Muls and an Add over a head-split tensor
    (7% of an ORT fp32 segment in Slice alone); the contrib kernel does it in one pass. The tables
    come from the graph's own constants, so positions are 0..S-1 (position_ids = offset 0).
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    matches = [(n, m) for n in g.node if n.op_type == "Add" and (m := _rope_match(n, g, producer))]
    if not matches:
        return 0
    tables: dict[bytes, str] = {}

    def table(a: np.ndarray, what: str) -> str:
        key = what.encode() + a.tobytes()
        if key not in tables:
            tables[key] = f"hrm_edge/rope/{what}{len(tables)}"
            g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), tables[key]))
        return tables[key]

    g.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "hrm_edge/rope/shape_3d"))
    g.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "hrm_edge/rope/pos0"))
    heads = {}
    for k, (add, (x, cos, sin)) in enumerate(matches):
        p = f"hrm_edge/rope{k}"
        d = 2 * cos.shape[-1]
        if d not in heads:
            heads[d] = f"hrm_edge/rope/shape_4d_{d}"
            g.initializer.append(numpy_helper.from_array(np.array([0, 0, -1, d], dtype=np.int64), heads[d]))
        new = [helper.make_node("Reshape", [x, "hrm_edge/rope/shape_3d"], [f"{p}/x3"], name=f"{p}/in"),
               helper.make_node("RotaryEmbedding", [f"{p}/x3", "hrm_edge/rope/pos0", table(cos, "cos"),
                                                    table(sin, "sin")], [f"{p}/y3"], domain=MS_DOMAIN,
                                num_heads=num_heads, interleaved=0, name=f"{p}/rope"),
               helper.make_node("Reshape", [f"{p}/y3", heads[d]], [add.output[0]], name=f"{p}/out")]
        at = next(i for i, n in enumerate(g.node) if n is add)
        g.node.remove(add)
        for n in reversed(new):
            g.node.insert(at, n)
    prune(g)  # the replaced Slices, Neg, Concat, Muls and the full-width tables
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_stale_value_info(g)
    return len(matches)


def split_matmuls(model: onnx.ModelProto) -> int:
    """MatMul(x, W) whose only consumer is a last-axis Split with constant sizes -> one MatMul per part.

    W must be an initializer (fp32 and dynamic-int8 bundles). In int8-qdq bundles the projection is
    requantized before the Split; splitting there was measured slower (ORT then duplicates the output
    DequantizeLinear for SiLU's two consumers and no longer fuses SiLU: 1758 vs 1640 ms per hrm-6m
    segment at batch 8), so those stay as they are."""
    count = 0
    g = model.graph
    producer, consumers = links(g)
    made: dict[tuple[str, int, int], str] = {}  # (weight, first column, end) -> the part's weight
    for split in [n for n in g.node if n.op_type == "Split" and len(n.input) == 2]:
        mm = producer.get(split.input[0])
        w = _const(g, mm.input[1]) if mm is not None and mm.op_type == "MatMul" else None
        sizes = _const(g, split.input[1])
        if w is None or w.ndim != 2 or sizes is None or len(consumers[mm.output[0]]) != 1:
            continue
        if _attr(split, "axis", 0) not in (-1, _rank_last(g, mm.output[0])) or int(sizes.sum()) != w.shape[1]:
            continue
        at = next(i for i, n in enumerate(g.node) if n is mm)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        new = []
        for k, out in enumerate(split.output):
            name = f"hrm_edge/split{count}/part{k}"
            key = (mm.input[1], int(edges[k]), int(edges[k + 1]))  # a layer applied in several cycles shares W
            if key not in made:
                made[key] = f"{name}/W"
                g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[:, key[1]:key[2]]), made[key]))
            new.append(helper.make_node("MatMul", [mm.input[0], made[key]], [out], name=name))
        g.node.remove(split)
        g.node.remove(mm)
        for n in reversed(new):
            g.node.insert(at, n)
        count += 1
    if count:
        prune(g)  # the full-width weights no MatMul reads any more
        _drop_stale_value_info(g)
    return count


def _rank_last(g: onnx.GraphProto, name: str) -> int:
    """The last axis of a tensor whose rank the graph records, else -1 (only -1 then matches)."""
    for vi in list(g.value_info) + list(g.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim) - 1
    return -1


def fuse_for_ort(model: onnx.ModelProto, num_heads: int) -> dict[str, int]:
    """Every rewrite above, in place; returns how many of each were made."""
    return {"attention": fuse_attention(model, num_heads), "rotary": fuse_rotary(model, num_heads),
            "split_matmul": split_matmuls(model)}


def _drop_stale_value_info(g: onnx.GraphProto) -> None:
    """Value infos of tensors that no node produces any more would confuse ORT's shape checks."""
    live = {o for n in g.node for o in n.output}
    keep = [vi for vi in g.value_info if vi.name in live]
    del g.value_info[:]
    g.value_info.extend(keep)


__all__ = ["fuse_for_ort", "fuse_attention", "fuse_rotary", "split_matmuls", "MS_DOMAIN"]
