"""Model -> ONNX graph, one small function per ACT mode (step | unrolled | loop).

Read top to bottom:
1. `prepare` copies the model for export (eval, fp32, lite's 5000-row position table cut to the
   canvas) so the user's model is never touched.
2. Two torch wrappers are traced with torch's TorchScript exporter at opset 17 (the highest
   TensorRT 8.5 parses; the dynamo exporter emits opset >= 18):
   - `StepGraph`: `model.step` as it is, the `step` graph;
   - `ActBody`: one ACT segment *plus* the halting bookkeeping of `Runner.run_act` (freeze halted
     samples, count steps, `act.halt_mask` with the segment number as a tensor), so the in-graph
     halting is the same rule as the host driver's.
3. `dedupe_initializers` turns constants into initializers and stores identical ones once (the
   TorchScript exporter folds RoPE tables into one copy per attention call); `fusable.canonical_norms`
   writes norms in the form runtime fusion passes match.
4. `unrolled` chains N copies of the body's *nodes* and `loop` wraps them in an ONNX `Loop` whose
   body reads the outer initializers; either way every weight is stored once.

`EXPORTERS` maps a mode to its function (Ultralytics-style dispatch); `export_onnx` is the entry.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export.fusable import canonical_norms
from hrm_edge.graph.links import prune, subgraph_inputs
from hrm_edge.model.act import halt_mask
from hrm_edge.runtime.base import ACT_OUTPUTS, STEP_INPUTS, STEP_OUTPUTS, ModelSpec, spec_from_config

ACT_MODES = ("step", "unrolled", "loop")
DEFAULT_OPSET = 17  # TensorRT 8.5 (JetPack 5) parses opsets up to 17
MIN_OPSET = 13  # Split/Squeeze/Unsqueeze/ReduceSum semantics the graphs rely on
MAX_OPSET = 20  # the newest opset the export path is tested with
# loop-carried ACT state, in the order of the body's inputs (and outputs, with `_next`)
STATE = ("z_H", "z_L", "done", "steps", "logits", "q_halt", "q_continue")


@dataclass
class ExportOptions:
    act: str = "step"
    segments: int | None = None  # None: the model's max_steps
    opset: int = DEFAULT_OPSET
    halt: str = "max"  # baked into unrolled / loop graphs; step graphs leave halting to the host
    batch: int | None = None  # None: dynamic batch dimension

    def validate(self, spec: ModelSpec | None = None) -> None:
        """Every check that needs no model first (the CLI runs these before loading anything), then the
        family-dependent halt mode when `spec` is given."""
        if self.act not in ACT_MODES:
            raise HrmEdgeError(f"--act must be one of {', '.join(ACT_MODES)}, got {self.act!r}")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise HrmEdgeError(f"--opset {self.opset} is outside the supported range {MIN_OPSET}..{MAX_OPSET}")
        if self.segments is not None and self.segments < 1:
            raise HrmEdgeError(f"--segments must be >= 1, got {self.segments}")
        if self.batch is not None and self.batch < 1:
            raise HrmEdgeError(f"--batch must be 'dynamic' or >= 1, got {self.batch}")
        if spec is not None:
            spec.check_halt(self.halt)


@dataclass
class ExportedGraph:
    """An ONNX graph plus what a manifest must say about it."""

    model: onnx.ModelProto
    act: str
    spec: ModelSpec  # max_steps = the segments this artifact runs
    baked_halt: str | None
    opset: int
    batch: int | None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.model.graph.input]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.model.graph.output]


# --------------------------------------------------------------------------------------------------
# 1. the model as exported
# --------------------------------------------------------------------------------------------------
def prepare(model: nn.Module) -> nn.Module:
    """A detached fp32 eval copy; lite's sinusoidal table cut to the positions the graph uses."""
    m = copy.deepcopy(model).float().eval().cpu()
    pe = getattr(getattr(m, "pos_encoding", None), "pe", None)
    if isinstance(pe, torch.Tensor):
        m.pos_encoding.pe = pe[: m.config.seq_len].clone()  # type: ignore[union-attr]
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def export_spec(model: nn.Module, segments: int | None) -> ModelSpec:
    spec = spec_from_config(model.config)  # type: ignore[attr-defined]
    return dataclasses.replace(spec, max_steps=segments or spec.max_steps)


def _has_puzzle(spec: ModelSpec) -> bool:
    return spec.puzzle_emb_ndim > 0


class StepGraph(nn.Module):
    """The `step` graph: `model.step` with the input names of runtime/base.py."""

    def __init__(self, model: nn.Module, has_puzzle: bool) -> None:
        super().__init__()
        self.model, self.has_puzzle = model, has_puzzle

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.has_puzzle:
            tokens, puzzle_emb, z_H, z_L, halted = args
        else:
            (tokens, z_H, z_L, halted), puzzle_emb = args, None
        return self.model.step(tokens, puzzle_emb, z_H, z_L, halted)  # type: ignore[operator]


class ActBody(nn.Module):
    """One segment of the host ACT driver (`Runner.run_act`) written as tensors.

    Inputs: tokens [, puzzle_emb], the state (z_H, z_L, done, steps, logits, q_halt, q_continue)
    and `n`, the 1-based segment number (0-d int64). At n == 1 every row resets its carry. Rows
    already `done` keep their logits / q / steps; the others take this segment's and halt by
    `act.halt_mask` (the one rule). `keep_going` is false once every row is done (Loop's exit).
    """

    def __init__(self, model: nn.Module, spec: ModelSpec, halt: str) -> None:
        super().__init__()
        self.model, self.spec, self.halt = model, spec, halt

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if _has_puzzle(self.spec):
            tokens, puzzle_emb, z_H, z_L, done, steps, logits, q_halt, q_cont, n = args
        else:
            (tokens, z_H, z_L, done, steps, logits, q_halt, q_cont, n), puzzle_emb = args, None
        reset = (n == 1).expand_as(done)
        lg, qh, qc, z_H, z_L = self.model.step(tokens, puzzle_emb, z_H, z_L, reset)  # type: ignore[operator]
        live = ~done
        logits = torch.where(live.view(-1, 1, 1), lg, logits)
        q_halt = torch.where(live, qh, q_halt)
        q_cont = torch.where(live, qc, q_cont)
        steps = torch.where(live, n.to(torch.int32).expand_as(steps), steps)
        s = self.spec
        stop = halt_mask(self.halt, n, qh, qc, s.max_steps, s.min_halt_steps, s.halt_threshold, s.adaptive_rule)
        done = done | (live & stop)
        keep_going = done.float().min() < 0.5
        return z_H, z_L, done, steps, logits, q_halt, q_cont, keep_going


# --------------------------------------------------------------------------------------------------
# 2. tracing
# --------------------------------------------------------------------------------------------------
def _trace(module: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
           opset: int, dynamic: dict[str, dict[int, str]]) -> onnx.ModelProto:
    """TorchScript exporter (opset <= 17 for TensorRT 8.5), constant folding on, into memory."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-derived Python ints, deprecation notes
        try:
            torch.onnx.export(module, args, buf, dynamo=False, opset_version=opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic or None, do_constant_folding=True)
        except TypeError:  # a torch without the `dynamo` keyword: the TorchScript path is its default
            torch.onnx.export(module, args, buf, opset_version=opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=dynamic or None, do_constant_folding=True)
    model = onnx.load_from_string(buf.getvalue())
    got = [i.name for i in model.graph.input]
    if got != inputs:
        raise HrmEdgeError(f"exporter dropped or renamed graph inputs: expected {inputs}, got {got}")
    return model


def _example(spec: ModelSpec, batch: int, state: bool) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    s, c, h = spec.seq_len, spec.carry_len, spec.hidden_size
    ex: dict[str, torch.Tensor] = {"tokens": torch.randint(0, spec.vocab_size, (batch, s), generator=g,
                                                           dtype=torch.int32)}
    if _has_puzzle(spec):
        ex["puzzle_emb"] = torch.randn(batch, spec.puzzle_emb_ndim, generator=g)
    ex["z_H"] = torch.randn(batch, c, h, generator=g)
    ex["z_L"] = torch.randn(batch, c, h, generator=g)
    if state:
        ex["done"] = torch.zeros(batch, dtype=torch.bool)
        ex["steps"] = torch.zeros(batch, dtype=torch.int32)
        ex["logits"] = torch.zeros(batch, s, spec.vocab_size)
        ex["q_halt"] = torch.zeros(batch)
        ex["q_continue"] = torch.zeros(batch)
        ex["n"] = torch.tensor(1, dtype=torch.int64)
    else:
        ex["halted"] = torch.ones(batch, dtype=torch.bool)
    return ex


def _dynamic(names: list[str], batch: int | None) -> dict[str, dict[int, str]]:
    if batch is not None:
        return {}
    return {n: {0: "batch"} for n in names if n not in ("n", "keep_going")}


def trace_step(model: nn.Module, spec: ModelSpec, opts: ExportOptions) -> onnx.ModelProto:
    ex = _example(spec, opts.batch or 2, state=False)
    inputs = [n for n in STEP_INPUTS if n in ex]
    return _trace(StepGraph(model, _has_puzzle(spec)), tuple(ex[n] for n in inputs), inputs, list(STEP_OUTPUTS),
                  opts.opset, _dynamic(inputs + list(STEP_OUTPUTS), opts.batch))


def trace_body(model: nn.Module, spec: ModelSpec, opts: ExportOptions) -> onnx.ModelProto:
    ex = _example(spec, opts.batch or 2, state=True)
    inputs = list(ex)
    outputs = [f"{n}_next" for n in STATE] + ["keep_going"]
    return _trace(ActBody(model, spec, opts.halt), tuple(ex.values()), inputs, outputs, opts.opset,
                  _dynamic(inputs + outputs, opts.batch))


# --------------------------------------------------------------------------------------------------
# 3. one copy of every constant
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
# 4. the three modes
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


Transform = Callable[[onnx.ModelProto], onnx.ModelProto]


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


def export_step(model: nn.Module, spec: ModelSpec, opts: ExportOptions, transform: Transform | None) -> ExportedGraph:
    g = dedupe_initializers(trace_step(model, spec, opts))
    canonical_norms(g)
    pin_step_output_shapes(g, spec, opts.batch)
    if transform is not None:
        g = transform(g)
        toposort(g.graph)
    return ExportedGraph(g, "step", spec, None, opts.opset, opts.batch)


def export_unrolled(model: nn.Module, spec: ModelSpec, opts: ExportOptions, transform: Transform | None
                    ) -> ExportedGraph:
    body = dedupe_initializers(trace_body(model, spec, opts))
    canonical_norms(body)
    if transform is not None:
        body = transform(body)
        toposort(body.graph)
    return ExportedGraph(assemble_unrolled(body, spec, opts.batch), "unrolled", spec, opts.halt, opts.opset,
                         opts.batch)


def export_loop(model: nn.Module, spec: ModelSpec, opts: ExportOptions, transform: Transform | None) -> ExportedGraph:
    body = dedupe_initializers(trace_body(model, spec, opts))
    canonical_norms(body)
    if transform is not None:
        body = transform(body)
        toposort(body.graph)
    return ExportedGraph(assemble_loop(body, spec, opts.batch), "loop", spec, opts.halt, opts.opset, opts.batch)


EXPORTERS: dict[str, Callable[..., ExportedGraph]] = {"step": export_step, "unrolled": export_unrolled,
                                                      "loop": export_loop}


def export_onnx(model: nn.Module, opts: ExportOptions, transform: Transform | None = None) -> ExportedGraph:
    """Trace and assemble the graph for `opts.act`; `transform` (precision) applies to the segment graph."""
    spec = export_spec(model, opts.segments)
    opts.validate(spec)
    t0 = time.perf_counter()
    m = prepare(model)
    out = EXPORTERS[opts.act](m, spec, opts, transform)
    out.seconds = time.perf_counter() - t0
    return out


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Op types used, counting the nodes of subgraphs (a Loop's body) too."""
    c: Counter[str] = Counter()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            c[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"] += 1
            for a in n.attribute:
                for sg in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                    walk(sg)

    walk(model.graph)
    return dict(sorted(c.items()))


__all__ = ["ACT_MODES", "DEFAULT_OPSET", "ExportOptions", "ExportedGraph", "EXPORTERS", "export_onnx", "op_counts",
           "dedupe_initializers", "assemble_unrolled", "assemble_loop", "prepare", "export_spec", "ACT_OUTPUTS"]
