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
3. `assemble.dedupe_initializers` turns constants into initializers and stores identical ones once
   (the TorchScript exporter folds RoPE tables into one copy per attention call);
   `fusable.canonical_norms` writes norms in the form runtime fusion passes match.
4. `assemble.assemble_unrolled` chains N copies of the body's *nodes* and `assemble_loop` wraps them
   in an ONNX `Loop` whose body reads the outer initializers; either way every weight is stored once.

`EXPORTERS` maps a mode to its function (Ultralytics-style dispatch); `export_onnx` is the entry.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
import torch
from torch import nn

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export.assemble import (
    STATE,
    assemble_loop,
    assemble_unrolled,
    dedupe_initializers,
    pin_step_output_shapes,
    toposort,
)
from hrm_edge.export.fusable import canonical_norms
from hrm_edge.model.act import halt_mask
from hrm_edge.runtime.base import ACT_OUTPUTS, STEP_INPUTS, STEP_OUTPUTS, ModelSpec, spec_from_config

ACT_MODES = ("step", "unrolled", "loop")
DEFAULT_OPSET = 17  # TensorRT 8.5 (JetPack 5) parses opsets up to 17
MIN_OPSET = 13  # Split/Squeeze/Unsqueeze/ReduceSum semantics the graphs rely on
MAX_OPSET = 20  # the newest opset the export path is tested with


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


Transform = Callable[[onnx.ModelProto], onnx.ModelProto]


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
           "prepare", "export_spec", "ACT_OUTPUTS"]
