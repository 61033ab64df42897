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
  one MatMul per part with the matching columns of W (int8-qdq: of the int8 W and its scales), so no
  copy of the projection is made.
Q and K arrive already scaled, so the attention kernel's scale is 1. Numerics: the same products and
sums in another order (~1e-5 over an ACT run, inside the export's 1e-4 parity bound;
tests/test_ort_fusions.py). The parity ladder runs the rewritten graph, as the runner does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

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
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
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
    _prune_unused(g)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_stale_value_info(g)
    return len(matches)


def _prune_unused(g: onnx.GraphProto) -> None:
    """Drop nodes none of whose outputs is used any more (the replaced Slices, Neg, Concat, Muls)."""
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        for n in g.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    used |= {i for sn in a.g.node for i in sn.input}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            g.node.remove(n)


def split_matmuls(model: onnx.ModelProto) -> int:
    """MatMul(x, W) whose only consumer is a last-axis Split with constant sizes -> one MatMul per part.

    W is an initializer (fp32 and dynamic-int8 bundles) or DequantizeLinear of one (int8-qdq: the int8
    columns, and their per-channel scales and zero points, are split alike, so each part dequantizes
    exactly as before; a QuantizeLinear -> DequantizeLinear pair between the MatMul and the Split is
    repeated on every part with the same per-tensor scale, so each part is requantized as before)."""
    count = 0
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            consumers[i].append(n)
    made: dict[tuple[str, int, int], str] = {}  # (weight, first column, end) -> the part's weight tensor
    for split in [n for n in g.node if n.op_type == "Split" and len(n.input) == 2]:
        mm, requant = producer.get(split.input[0]), None
        if mm is not None and mm.op_type == "DequantizeLinear" and len(consumers[mm.output[0]]) == 1:
            q = producer.get(mm.input[0])  # int8-qdq: the projection's output is requantized before the Split
            if q is not None and q.op_type == "QuantizeLinear" and len(consumers[q.output[0]]) == 1:
                requant, mm = (q, mm), producer.get(q.input[0])
        if mm is None or mm.op_type != "MatMul" or len(consumers[mm.output[0]]) != 1:
            continue
        weight = _split_weight(g, producer, mm.input[1])
        sizes = _const(g, split.input[1])
        if weight is None or sizes is None or int(sizes.sum()) != weight[1]:
            continue
        if _attr(split, "axis", 0) not in (-1, _rank_last(g, mm.output[0])):
            continue
        at = next(i for i, n in enumerate(g.node) if n is mm)
        edges = np.concatenate([[0], np.cumsum(sizes)])
        new = []
        for k, out in enumerate(split.output):
            name = f"hrm_edge/split{count}/part{k}"
            key = (weight[2], int(edges[k]), int(edges[k + 1]))  # a layer applied in several cycles shares W
            nodes, w = ([], made[key]) if key in made else weight[0](name, *key[1:])
            made[key] = w
            if requant is None:
                new += nodes + [helper.make_node("MatMul", [mm.input[0], w], [out], name=name)]
                continue
            q, dq = requant  # the same per-tensor scale for every part, as the Split's input had
            new += nodes + [helper.make_node("MatMul", [mm.input[0], w], [f"{name}/y"], name=name),
                            helper.make_node("QuantizeLinear", [f"{name}/y", *q.input[1:]], [f"{name}/yq"],
                                             name=f"{name}/q"),
                            helper.make_node("DequantizeLinear", [f"{name}/yq", *dq.input[1:]], [out],
                                             name=f"{name}/dq")]
        g.node.remove(split)
        for n in requant or ():
            g.node.remove(n)
        g.node.remove(mm)
        for n in reversed(new):
            g.node.insert(at, n)
        count += 1
    if count:
        _prune_unused(g)
        _prune_unused_initializers(g)
        _drop_stale_value_info(g)
    return count


def _split_weight(g: onnx.GraphProto, producer: dict[str, onnx.NodeProto], name: str) -> tuple[Any, int, str] | None:
    """(make(part_name, lo, hi) -> (nodes, tensor), columns, identity) for a 2-D MatMul weight that can be split
    by column; the identity names the stored weight, whichever node reads it."""
    def add(a: np.ndarray, tname: str) -> str:
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(a), tname))
        return tname

    w = _const(g, name)
    if w is not None:
        if w.ndim != 2:
            return None
        return (lambda part, lo, hi: ([], add(w[:, lo:hi], f"{part}/W"))), w.shape[1], name
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    wq, scale = _const(g, dq.input[0]), _const(g, dq.input[1])
    zp = _const(g, dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
    if wq is None or wq.ndim != 2 or scale is None or (len(dq.input) > 2 and dq.input[2] and zp is None):
        return None
    cols = wq.shape[1]
    per_channel = scale.ndim == 1 and scale.size == cols and cols > 1
    if per_channel and _attr(dq, "axis", 1) not in (1, -1):
        return None
    if not per_channel and scale.size != 1:
        return None

    def make(part: str, lo: int, hi: int) -> tuple[list[onnx.NodeProto], str]:
        ins = [add(wq[:, lo:hi], f"{part}/Wq"), add(scale[lo:hi] if per_channel else scale, f"{part}/scale")]
        if zp is not None:
            ins.append(add(zp[lo:hi] if per_channel else zp, f"{part}/zp"))
        attrs = {"axis": 1} if per_channel else {}
        return [helper.make_node("DequantizeLinear", ins, [f"{part}/W"], name=f"{part}/w_dq", **attrs)], f"{part}/W"

    return make, cols, f"{dq.input[0]}|{dq.input[1]}"


def _rank_last(g: onnx.GraphProto, name: str) -> int:
    """The last axis of a tensor whose rank the graph records, else -1 (only -1 then matches)."""
    for vi in list(g.value_info) + list(g.output):
        if vi.name == name and vi.type.tensor_type.HasField("shape"):
            return len(vi.type.tensor_type.shape.dim) - 1
    return -1


def _prune_unused_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input}
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                used |= {i for sn in a.g.node for i in sn.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


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
