"""The graph half of the export (onnx.py traces; this assembles): one copy of every constant, and the
`unrolled` / `loop` graphs built from one traced ACT segment, every weight stored once.

- `dedupe_initializers` turns constants into initializers and stores identical ones once (the
  TorchScript exporter folds RoPE tables into one copy per attention call);
- `assemble_unrolled` chains N copies of the segment's *nodes*; `assemble_loop` wraps them in an ONNX
  `Loop` whose body reads the outer initializers;
- `pin_step_output_shapes` gives the step graph's outputs their static dims (only the batch stays dynamic).
No torch here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hrm_edge.errors import HrmEdgeError
from hrm_edge.graph.links import prune, subgraph_inputs
from hrm_edge.runtime.base import ModelSpec

# loop-carried ACT state, in the order of the body's inputs (and outputs, with `_next`)
STATE = ("z_H", "z_L", "done", "steps", "logits", "q_halt", "q_continue")


# --------------------------------------------------------------------------------------------------
# one copy of every constant
# --------------------------------------------------------------------------------------------------
def _digest(t: TensorProto) -> tuple[int, tuple[int, ...], str]:
    arr = numpy_helper.to_array(t)
    return t.data_type, tuple(t.dims), hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()


def dedupe_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constants become initializers, Identity aliases of them go, value-identical ones are stored once."""
    g = model.graph
    keep_nodes = []
    rename: dict[str, str] = {}
    taken = {t.name for t in g.initializer}
    for node in g.node:
        attr = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and "value" in attr and node.output[0] not in {o.name for o in g.output}:
            t = TensorProto()
            t.CopyFrom(attr["value"].t)
            t.name = f"const{len(taken)}"  # short: unrolled graphs reference these names in every segment
            taken.add(t.name)
            rename[node.output[0]] = t.name
            g.initializer.append(t)
        else:
            keep_nodes.append(node)
    # Identity aliases of a weight (the exporter's way of sharing one parameter between call sites)
    # read the weight directly, so matmuls see a constant B (int8 quantizes it; TensorRT folds it)
    outputs = {o.name for o in g.output}
    alias_free = []
    for node in keep_nodes:
        src = rename.get(node.input[0], node.input[0]) if node.input else ""
        if node.op_type == "Identity" and src in taken and node.output[0] not in outputs:
            rename[node.output[0]] = src
        else:
            alias_free.append(node)
    del g.node[:]
    g.node.extend(alias_free)
    first: dict[tuple[int, tuple[int, ...], str], str] = {}
    kept = []
    protected = {o.name for o in g.output}
    for t in g.initializer:
        key = _digest(t)
        if key in first and t.name not in protected:
            for k, v in rename.items():  # a Constant renamed above may now map further
                if v == t.name:
                    rename[k] = first[key]
            rename[t.name] = first[key]
        else:
            first.setdefault(key, t.name)
            kept.append(t)
    del g.initializer[:]
    g.initializer.extend(kept)
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    return model


def toposort(graph: onnx.GraphProto) -> None:
    """Order nodes so every input is produced before use (converters may append nodes at the end)."""
    produced = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    pending, ordered = list(graph.node), []
    outer_ok = {x for n in graph.node for x in subgraph_inputs(n)} - {o for n in graph.node for o in n.output}
    produced |= outer_ok  # names from an enclosing scope (or graph inputs) are available from the start
    while pending:
        rest = []
        for n in pending:
            if all(x in produced for x in subgraph_inputs(n)):
                ordered.append(n)
                produced.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise HrmEdgeError(f"graph has a cycle or a dangling input near node {rest[0].name or rest[0].op_type}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


# --------------------------------------------------------------------------------------------------
# unrolled and loop from one segment
# --------------------------------------------------------------------------------------------------
def _inline(body: onnx.GraphProto, prefix: str, bind: dict[str, str], keep_names: bool = True
            ) -> tuple[list[onnx.NodeProto], dict[str, str]]:
    """Copies of the body's nodes: inputs bound by `bind`, initializers shared, the rest renamed under `prefix`."""
    shared = {t.name for t in body.initializer}
    outputs = {o.name for o in body.output}
    short: dict[str, str] = {}

    def name(x: str) -> str:
        if not x or x in shared:
            return x
        if x in bind:
            return bind[x]
        if x in outputs:  # kept readable: parity instruments `seg{k}/z_H_next`
            return prefix + x
        if x not in short:  # internal tensors get short names (8 copies of ~2000 nodes add up)
            short[x] = f"{prefix}{len(short):x}"
        return short[x]

    nodes = []
    for i, node in enumerate(body.node):
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.name = f"{prefix}{node.name or node.op_type}" if keep_names else f"{prefix}n{i:x}"
        n.input[:] = [name(x) for x in node.input]
        n.output[:] = [name(x) for x in node.output]
        nodes.append(n)
    return nodes, {o.name: name(o.name) for o in body.output}


def _const(name: str, value: Any, dtype: Any) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _initial_state(spec: ModelSpec, batch: int | None) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    """Zeros for the carry and accumulators, `done` false, shaped by the batch of `tokens`."""
    inits = [_const("act/zero_f", np.zeros((1, 1, 1)), np.float32), _const("act/zero_f1", [0.0], np.float32),
             _const("act/false", [False], np.bool_), _const("act/zero_i", [0], np.int32),
             _const("act/carry_dims", [spec.carry_len, spec.hidden_size], np.int64),
             _const("act/logit_dims", [spec.seq_len, spec.vocab_size], np.int64)]
    nodes = []
    if batch is None:
        inits.append(_const("act/idx0", [0], np.int64))
        nodes += [helper.make_node("Shape", ["tokens"], ["act/tok_shape"], name="act/Shape"),
                  helper.make_node("Gather", ["act/tok_shape", "act/idx0"], ["act/batch"], name="act/Gather", axis=0)]
    else:
        inits.append(_const("act/batch", [batch], np.int64))
    nodes += [
        helper.make_node("Concat", ["act/batch", "act/carry_dims"], ["act/carry_shape"], name="act/ConcatC", axis=0),
        helper.make_node("Concat", ["act/batch", "act/logit_dims"], ["act/logit_shape"], name="act/ConcatL", axis=0),
        helper.make_node("Expand", ["act/zero_f", "act/carry_shape"], ["act/z0"], name="act/ExpandZ"),
        helper.make_node("Expand", ["act/false", "act/batch"], ["act/done0"], name="act/ExpandDone"),
        helper.make_node("Expand", ["act/zero_i", "act/batch"], ["act/steps0"], name="act/ExpandSteps"),
        helper.make_node("Expand", ["act/zero_f", "act/logit_shape"], ["act/logits0"], name="act/ExpandLogits"),
        helper.make_node("Expand", ["act/zero_f1", "act/batch"], ["act/q0"], name="act/ExpandQ"),
    ]
    return nodes, inits


_STATE0 = {"z_H": "act/z0", "z_L": "act/z0", "done": "act/done0", "steps": "act/steps0", "logits": "act/logits0",
           "q_halt": "act/q0", "q_continue": "act/q0"}


def _act_outputs(body: onnx.ModelProto, batch: int | None, spec: ModelSpec) -> list[onnx.ValueInfoProto]:
    b: Any = batch if batch is not None else "batch"
    return [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [b, spec.seq_len, spec.vocab_size]),
            helper.make_tensor_value_info("q_halt", TensorProto.FLOAT, [b]),
            helper.make_tensor_value_info("q_continue", TensorProto.FLOAT, [b]),
            helper.make_tensor_value_info("steps", TensorProto.INT32, [b])]


def _outer_inputs(body: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [i for i in body.graph.input if i.name in ("tokens", "puzzle_emb")]


def _finish(graph: onnx.GraphProto, like: onnx.ModelProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=list(like.opset_import), producer_name="hrm-edge",
                              producer_version=like.producer_version)
    model.ir_version = like.ir_version
    return model


def assemble_unrolled(body: onnx.ModelProto, spec: ModelSpec, batch: int | None) -> onnx.ModelProto:
    """N copies of the segment's nodes, chained; weights are the body's initializers, stored once."""
    nodes, inits = _initial_state(spec, batch)
    state = dict(_STATE0)
    for k in range(1, spec.max_steps + 1):
        inits.append(_const(f"act/n{k}", k, np.int64))
        bind = {"tokens": "tokens", "puzzle_emb": "puzzle_emb", "n": f"act/n{k}", **state}
        seg_nodes, outs = _inline(body.graph, f"seg{k}/", bind, keep_names=k == 1)
        nodes += seg_nodes
        state = {s: outs[f"{s}_next"] for s in STATE}
    nodes += [helper.make_node("Identity", [state[s]], [s], name=f"act/out_{s}")
              for s in ("logits", "q_halt", "q_continue", "steps")]
    graph = helper.make_graph(nodes, "hrm_act_unrolled", _outer_inputs(body), _act_outputs(body, batch, spec),
                              initializer=list(body.graph.initializer) + inits)
    prune(graph)
    return _finish(graph, body)


def assemble_loop(body: onnx.ModelProto, spec: ModelSpec, batch: int | None) -> onnx.ModelProto:
    """`Loop(trip_count=N, cond=True)` over one segment; exits early when every row has halted."""
    nodes, inits = _initial_state(spec, batch)
    inits += [_const("act/trip_count", spec.max_steps, np.int64), _const("act/cond0", True, np.bool_),
              _const("act/one_i64", 1, np.int64)]
    by_name = {i.name: i for i in body.graph.input}
    loop_in = [helper.make_tensor_value_info("seg/iter", TensorProto.INT64, []),
               helper.make_tensor_value_info("seg/cond_in", TensorProto.BOOL, [])]
    for s in STATE:
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(by_name[s])
        vi.name = f"seg/in_{s}"
        loop_in.append(vi)
    bind = {"tokens": "tokens", "puzzle_emb": "puzzle_emb", "n": "seg/n", **{s: f"seg/in_{s}" for s in STATE}}
    seg_nodes, outs = _inline(body.graph, "seg/", bind)
    body_nodes = [helper.make_node("Add", ["seg/iter", "act/one_i64"], ["seg/n"], name="seg/n")] + seg_nodes
    out_vi = {o.name: o for o in body.graph.output}
    loop_out = []
    for src in ["keep_going"] + [f"{s}_next" for s in STATE]:
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(out_vi[src])
        vi.name = outs[src]
        loop_out.append(vi)
    loop_body = helper.make_graph(body_nodes, "hrm_act_segment", loop_in, loop_out)
    finals = {s: f"loop/{s}" for s in STATE}
    finals.update({s: s for s in ("logits", "q_halt", "q_continue", "steps")})
    nodes.append(helper.make_node("Loop", ["act/trip_count", "act/cond0"] + [_STATE0[s] for s in STATE],
                                  [finals[s] for s in STATE], name="act/Loop", body=loop_body))
    graph = helper.make_graph(nodes, "hrm_act_loop", _outer_inputs(body), _act_outputs(body, batch, spec),
                              initializer=list(body.graph.initializer) + inits)
    return _finish(graph, body)


def pin_step_output_shapes(g: onnx.ModelProto, spec: ModelSpec, batch: int | None) -> None:
    """Replace the exporter's symbolic names for static output dims (e.g. `Slicelogits_dim_1`) by their values.

    Only the batch stays dynamic, so TensorRT optimisation profiles and the manifest state true shapes.
    """
    b: Any = batch if batch is not None else "batch"
    want = {"logits": [b, spec.seq_len, spec.vocab_size], "q_halt": [b], "q_continue": [b],
            "z_H_next": [b, spec.carry_len, spec.hidden_size], "z_L_next": [b, spec.carry_len, spec.hidden_size]}
    for out in g.graph.output:
        dims = want.get(out.name)
        if dims is None:
            continue
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d


__all__ = ["STATE", "dedupe_initializers", "toposort", "assemble_unrolled", "assemble_loop",
           "pin_step_output_shapes"]
