"""The parity ladder: what `export` proves before it commits a bundle (and `verify` re-proves).

L1  structure: `onnx.checker` full check, strict shape inference, the opset asked for, and the
    op-support lint of the chosen target (trt_ops.py); every target's lint is recorded.
L2  weights: every tensor of the checkpoint's state dict reaches the graph as an initializer a
    live node reads (value-identical, or its transpose; fp16 = the value within fp16 rounding, 2^-10
    relative, with |x| < 6e-8 lifted to 6e-8 as ONNX Runtime's converter does; int8 = dequantizes to
    the value within half a quantization step), and `puzzle_emb.npy` equals the
    checkpoint's table in the bundle's dtype. A weight constant-folded into something else or
    dropped fails here.
L3  synthetic parity, *segment by segment, teacher-forced*: random token grids go through the bundle in
    ONNX Runtime (the shipped graph; for unrolled / loop an instrumented copy that also returns each
    segment's carry) and every segment is re-run in PyTorch from the *same* carry. Per output,
    max|Δ| must be <= max(base, FLOOR_FACTOR x floor), base 1e-4, floor = how far PyTorch's own fp32
    result lies from a float64 re-run of that segment (measured only when base is exceeded). The
    graph's halting step per sample must equal the host rule applied to PyTorch's q-values, except
    where the deciding q margin is within tolerance (counted). A step bundle runs every segment once
    per batch and each halting rule is judged on those q-values (segments do not depend on the rule).
L4  real puzzles, *free running*, the way a user runs them: ARC test inputs (data.arc + data.tokens,
    puzzle vectors from the bundle's table) through ONNX Runtime, fp32 PyTorch and float64 PyTorch,
    each on its own trajectory. A recurrence amplifies rounding (a random `hrm-6m`'s ORT-vs-PyTorch
    logit gap grows ~3x per segment, 5e-6 to 1e-3 over 8), so the gate is set per segment by the
    model's own fp32 sensitivity measured in the same run: the runtime's max|Δ| at segment k must be
    <= max(base, FLOOR_FACTOR x floor_k), floor_k = max|fp32 PyTorch - float64 PyTorch| at segment k.
    Raw argmax grids (every canvas cell, decodable or not) at the halting segment are compared; a
    differing cell is allowed only where PyTorch's top-two margin is <= 2 x that segment's logit
    tolerance, a differing halting step only where the q decision is within the q tolerance.
    FLOOR_FACTOR = 8: |runtime - PyTorch| <= |runtime - exact| + |PyTorch - exact|, so a runtime whose
    own fp32 error is up to 7x PyTorch's passes (ONNX Runtime CPU on a random hrm-6m: gap / floor up to
    3.2, at segment 5). What an export bug does shows from segment 1 on (every segment runs the same
    graph), where the floor is ~3e-6 and the 1e-4 base decides; the factor only matters once the
    recurrence has amplified PyTorch's own rounding past the base.
fp16 / int8 bundles are measured the same way against fp32 PyTorch, but L3 / L4 only gate on finite
outputs: their agreement is reported, not required (DESIGN: report precision effects separately).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MethodType
from typing import Any

import numpy as np
import onnx
import torch

import hrm_edge.export.trt_ops as trt_ops
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.act import HaltTracker, halt_margin
from hrm_edge.runtime.base import ActResult, ModelSpec, Runner, TensorMeta
from hrm_edge.runtime.torch import TorchRunner

BASE_TOL = {"fp32": 1e-4, "fp16": 1e-4, "int8": 1e-4, "int8-qdq": 1e-4}  # near-tie margin and fp32 gate
FLOOR_FACTOR = 8.0  # see the module docstring: a runtime up to 7x less exact than PyTorch fp32, + 1
DEFAULT_L4_SOURCE = "arc-agi-1/evaluation"
Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------
@dataclass
class LevelResult:
    level: str
    ok: bool
    summary: str
    worst_tensor: str | None = None
    worst: float | None = None
    tolerance: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ParityReport:
    precision: str
    levels: list[LevelResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(lv.ok for lv in self.levels)

    @property
    def failed(self) -> LevelResult | None:
        return next((lv for lv in self.levels if not lv.ok), None)

    def level(self, name: str) -> LevelResult | None:
        return next((lv for lv in self.levels if lv.level == name), None)

    def to_dict(self) -> dict[str, Any]:
        f = self.failed
        return {"ok": self.ok, "precision": self.precision, "failed_level": f.level if f else None,
                "worst_tensor": f.worst_tensor if f else None, "levels": {lv.level: lv.to_dict() for lv in self.levels}}

    def message(self) -> str:
        f = self.failed
        if f is None:
            return "parity: all levels passed"
        worst = f" worst tensor {f.worst_tensor}" if f.worst_tensor else ""
        val = f" (|Δ| {f.worst:.3g} > tol {f.tolerance:.3g})" if f.worst is not None and f.tolerance else ""
        return f"parity {f.level} failed:{worst}{val}: {f.summary}"


class ParityError(HrmEdgeError):
    """The bundle did not prove equal to PyTorch; nothing was written."""

    exit_code = 3

    def __init__(self, report: ParityReport, path: str | Path | None = None) -> None:
        self.report = report
        super().__init__(report.message() + "; no bundle written", path)


# --------------------------------------------------------------------------------------------------
# L1 structure
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# L2 weights
# --------------------------------------------------------------------------------------------------
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
    quant: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = {}
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
                quant.setdefault(arr.shape, []).append(((arr.astype(np.float32) - zp) * scale, scale))
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
                for deq, scale in quant.get(shp, []):
                    if np.all(np.abs(deq - cand) <= 0.51 * np.max(scale) + 1e-7):
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


# --------------------------------------------------------------------------------------------------
# PyTorch references
# --------------------------------------------------------------------------------------------------
@dataclass
class TorchF64Runner(TorchRunner):
    """The same model in float64 (norms stay fp32 where the model says so): the fp32 noise floor."""

    name: str = "torch-f64"

    def activate(self) -> None:
        self.model = copy.deepcopy(self.model).double().eval()

    def input_metadata(self) -> dict[str, TensorMeta]:
        meta = super().input_metadata()
        return {k: TensorMeta(np.dtype(np.float64), m.shape) if m.dtype == np.float32 else m for k, m in meta.items()}

    @torch.inference_mode()
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
        logits, q_halt, q_cont, z_H, z_L = self.model.step(t["tokens"], t.get("puzzle_emb"), t["z_H"], t["z_L"],
                                                           t["halted"])
        out = {"logits": logits, "q_halt": q_halt, "q_continue": q_cont, "z_H_next": z_H, "z_L_next": z_L}
        return {k: v.double().numpy() for k, v in out.items()}


def _as64(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feed.items()}


# --------------------------------------------------------------------------------------------------
# recording what ONNX Runtime did, segment by segment
# --------------------------------------------------------------------------------------------------
@dataclass
class OrtTrace:
    result: ActResult
    feeds: list[dict[str, np.ndarray]]  # the step inputs of every segment run
    outputs: list[dict[str, np.ndarray]]  # what ORT returned per segment (all of it for step; carries otherwise)
    halt: str = "max"  # the halting rule the run used (result.steps follow it)


def record_step(runner: Runner, tokens: np.ndarray, pe: np.ndarray | None, halt: str) -> OrtTrace:
    """Run the shared driver on a step bundle, keeping every segment's feed and outputs."""
    feeds, outs = [], []
    plain = runner.infer

    def rec(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = plain(feed)
        feeds.append(dict(feed))
        outs.append(out)
        return out

    runner.infer = rec  # type: ignore[method-assign]
    # the base class's host carry path, so every segment goes through `infer` (not ORT's I/O binding)
    runner.step_session = MethodType(Runner.step_session, runner)  # type: ignore[method-assign]
    try:
        res = runner.run_act(tokens, pe, halt=halt)
    finally:
        del runner.infer
        del runner.step_session
    return OrtTrace(res, feeds, outs, halt)


def instrument(model: onnx.ModelProto, act: str, segments: int) -> onnx.ModelProto:
    """A copy of an unrolled / loop graph that also returns each segment's carry (no node changed)."""
    from onnx import helper

    from hrm_edge.export.onnx import STATE

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if act == "unrolled":
        produced = {o for n in g.node for o in n.output}
        for k in range(1, segments):
            for s in ("z_H", "z_L"):
                name = f"seg{k}/{s}_next"
                if name not in produced:
                    raise HrmEdgeError(f"cannot instrument the unrolled graph: {name} not found")
                g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return m
    loop = next(n for n in g.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    for s in ("z_H", "z_L"):
        src = body.output[1 + STATE.index(s)].name
        body.node.append(helper.make_node("Identity", [src], [f"seg/scan_{s}"], name=f"seg/scan_{s}"))
        body.output.append(helper.make_tensor_value_info(f"seg/scan_{s}", onnx.TensorProto.FLOAT, None))
        loop.output.append(f"scan/{s}")
        g.output.append(helper.make_tensor_value_info(f"scan/{s}", onnx.TensorProto.FLOAT, None))
    return m


def record_graph(runner: Any, inst_session: Any, tokens: np.ndarray, pe: np.ndarray | None,
                 spec: ModelSpec) -> OrtTrace:
    """Run an instrumented unrolled / loop graph; rebuild the per-segment step feeds from its carries."""
    feed = {"tokens": np.ascontiguousarray(tokens, np.int32)}
    if pe is not None:
        feed["puzzle_emb"] = np.ascontiguousarray(pe, np.float32)
    names = [o.name for o in inst_session.get_outputs()]
    out = dict(zip(names, inst_session.run(None, feed)))
    if "scan/z_H" in out:
        carries = [(out["scan/z_H"][i], out["scan/z_L"][i]) for i in range(out["scan/z_H"].shape[0])]
    else:
        carries = [(out[f"seg{k}/z_H_next"], out[f"seg{k}/z_L_next"]) for k in range(1, spec.max_steps)]
    b = tokens.shape[0]
    res = ActResult(out["logits"].astype(np.float32), out["q_halt"], out["q_continue"], out["steps"].astype(np.int32))
    z0 = np.zeros((b, spec.carry_len, spec.hidden_size), np.float32)
    feeds, outs = [], []
    for k in range(1, int(res.steps.max()) + 1):
        zh, zl = (z0, z0) if k == 1 else carries[k - 2]
        f = {**feed, "z_H": zh, "z_L": zl, "halted": np.full(b, k == 1)}
        feeds.append(f)
        outs.append({"z_H_next": carries[k - 1][0], "z_L_next": carries[k - 1][1]} if k - 1 < len(carries) else {})
    return OrtTrace(res, feeds, outs, runner.baked_halt)


# --------------------------------------------------------------------------------------------------
# L3 teacher-forced comparison
# --------------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    base: float
    gated: bool
    max_abs: dict[str, float] = field(default_factory=dict)
    worst_ratio: float = 0.0
    worst: tuple[str, float, float] = ("", 0.0, 0.0)  # tensor, |Δ|, tolerance
    floors: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    halting: dict[str, int] = field(default_factory=lambda: {"samples": 0, "agree": 0, "near_tie": 0})
    finite: bool = True

    def add(self, name: str, delta: float, tol: float, where: str) -> None:
        self.max_abs[name] = max(self.max_abs.get(name, 0.0), delta)
        if not np.isfinite(delta):
            self.finite = False
        ratio = delta / tol if tol else float("inf")
        if ratio > self.worst_ratio or not np.isfinite(delta):
            self.worst_ratio, self.worst = ratio, (name, delta, tol)
        if self.gated and not delta <= tol:
            self.failures.append(f"{where}: {name} |Δ| {delta:.3g} > {tol:.3g}")


def _kind(name: str) -> str:
    return "carry" if name.startswith("z_") else name


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def _qs(outputs: list[dict[str, np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [o["q_halt"] for o in outputs], [o["q_continue"] for o in outputs]


def _halting_steps(qh: list[np.ndarray], qc: list[np.ndarray], halt: str, spec: ModelSpec) -> np.ndarray:
    tracker = HaltTracker.for_spec(qh[0].shape[0], halt, spec)
    for k in range(1, len(qh) + 1):
        tracker.update(k, qh[k - 1], qc[k - 1])
        if tracker.done.all():
            break
    steps = tracker.steps
    steps[~tracker.done] = 0  # not halted within the segments available: never equal to a graph's answer
    return steps


def _near_tie(qh: list[np.ndarray], qc: list[np.ndarray], halt: str, spec: ModelSpec, row: int,
              tol: float | list[float]) -> bool:
    """Whether the halting decision of `row` sat within `tol` (one value, or one per segment) of flipping."""
    for k in range(len(qh)):
        t = tol[min(k, len(tol) - 1)] if isinstance(tol, list) else tol
        if halt == "adaptive" and abs(float(halt_margin(qh[k][row], qc[k][row], spec.adaptive_rule))) < t:
            return True
        if halt == "batch-mean" and spec.halt_threshold is not None:
            p = 1.0 / (1.0 + np.exp(-qh[k].astype(np.float64)))
            if abs(float(p.mean()) - spec.halt_threshold) < t:
                return True
    return False


def _runtime_steps(trace: OrtTrace, halt: str, spec: ModelSpec) -> np.ndarray:
    """Where the runtime halts each sample under `halt`: its own answer for the mode it ran, else (a step
    trace holds every segment's q-values, and segments do not depend on the halting rule) the host rule
    applied to its q-values, exactly what the shared driver would do."""
    if halt == trace.halt or not all("q_halt" in o for o in trace.outputs):
        return trace.result.steps
    return _halting_steps(*_qs(trace.outputs), halt, spec)


def teacher_forced(trace: OrtTrace, t32: TorchRunner, t64: TorchF64Runner, halts: str | list[str], spec: ModelSpec,
                   stats: _Stats, case: str) -> None:
    """Re-run each recorded segment in PyTorch from ORT's own carry; compare; check the halting per mode."""
    qh, qc, logits = [], [], []
    ref64: dict[int, dict[str, np.ndarray]] = {}

    def floor(k: int, name: str, ref: np.ndarray, rows: Any = slice(None)) -> float:
        if k not in ref64:
            ref64[k] = t64.infer(_as64(trace.feeds[k]))
        return _max_abs(ref[rows], ref64[k][name][rows])

    def compare(k: int, name: str, got: np.ndarray, ref: np.ndarray, rows: Any = slice(None)) -> None:
        d = _max_abs(got[rows], ref[rows])
        tol = stats.base
        if d > tol and stats.gated:
            fl = floor(k, name, ref, rows)
            stats.floors[_kind(name)] = max(stats.floors.get(_kind(name), 0.0), fl)
            tol = max(tol, FLOOR_FACTOR * fl)
        stats.add(_kind(name), d, tol, f"{case} segment {k + 1}")

    for k, feed in enumerate(trace.feeds):
        ref = t32.infer(feed)
        qh.append(ref["q_halt"])
        qc.append(ref["q_continue"])
        logits.append(ref["logits"])
        for name, got in trace.outputs[k].items():
            compare(k, name, got, ref[name])
    res = trace.result
    for b in range(res.steps.shape[0]):
        k = int(res.steps[b]) - 1
        if not 0 <= k < len(logits):
            stats.failures.append(f"{case}: sample {b} reports halting step {k + 1}")
            continue
        compare(k, "logits", res.logits, logits[k], rows=[b])
        compare(k, "q_halt", res.q_halt, qh[k], rows=[b])
        compare(k, "q_continue", res.q_continue, qc[k], rows=[b])
    for halt in [halts] if isinstance(halts, str) else halts:
        got = _runtime_steps(trace, halt, spec)
        want = _halting_steps(qh, qc, halt, spec)
        stats.halting["samples"] += int(want.size)
        for b in range(want.size):
            if want[b] == got[b]:
                stats.halting["agree"] += 1
            elif _near_tie(qh, qc, halt, spec, b, stats.base):
                stats.halting["near_tie"] += 1
            elif stats.gated:
                stats.failures.append(f"{case} halt {halt}: sample {b} halts at segment {got[b]} in ONNX, "
                                      f"{want[b] or '>' + str(len(qh))} by the host rule on PyTorch's q-values")


def _puzzle_rows(torch_model: Any, spec: ModelSpec, rng: np.random.Generator, b: int) -> np.ndarray | None:
    if spec.puzzle_emb_ndim == 0:
        return None
    n = torch_model.config.num_puzzle_identifiers
    ids = rng.integers(0, n, b)
    with torch.no_grad():
        return torch_model.puzzle_vectors(torch.as_tensor(ids)).float().numpy()


def _instrumented(runner: Any, spec: ModelSpec) -> Any:
    """An ONNX Runtime session of an unrolled / loop bundle's graph that also returns every segment's carry."""
    import onnxruntime as ort

    from hrm_edge.graph.ort_fusions import fuse_for_ort

    model = onnx.load(str(Path(runner.bundle) / runner.manifest["onnx"]["file"]))
    heads = runner.attention_heads()
    if heads:  # the graph the runner itself runs
        fuse_for_ort(model, heads)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(instrument(model, runner.act_mode, spec.max_steps).SerializeToString(), so,
                                providers=runner.providers or ["CPUExecutionProvider"])


def _trace(runner: Any, inst: Any, tokens: np.ndarray, pe: np.ndarray | None, spec: ModelSpec) -> OrtTrace:
    """Every segment of a batch: a step bundle runs all of them (halt max; the other rules are derived from
    its q-values), an unrolled / loop bundle runs its baked rule and its instrumented copy reports the carries."""
    return record_step(runner, tokens, pe, "max") if inst is None else record_graph(runner, inst, tokens, pe, spec)


def check_l3(runner: Any, torch_model: Any, spec: ModelSpec, precision: str, batches: tuple[int, ...],
             seed: int = 0, log: Log | None = None) -> LevelResult:
    gated = precision == "fp32"
    stats = _Stats(BASE_TOL[precision], gated)
    rng = np.random.default_rng(seed)
    t32 = TorchRunner(spec=spec, model=torch_model)
    t64 = TorchF64Runner(spec=spec, model=torch_model)
    modes = list(spec.halt_modes) if runner.act_mode == "step" else [runner.baked_halt]
    inst = None if runner.act_mode == "step" else _instrumented(runner, spec)
    cases = []
    with t32, t64:
        for b in batches:
            case = f"batch {b}"
            if log:
                log(f"L3 {case}, halt {'/'.join(modes)}")
            tokens = rng.integers(0, spec.vocab_size, (b, spec.seq_len)).astype(np.int32)
            pe = _puzzle_rows(torch_model, spec, rng, b)
            trace = _trace(runner, inst, tokens, pe, spec)
            teacher_forced(trace, t32, t64, modes, spec, stats, case)
            cases.append({"case": case, "halt": modes, "segments": len(trace.feeds),
                          "steps": {h: _runtime_steps(trace, h, spec).tolist() for h in modes}})
    name, worst, tol = stats.worst
    details = {"base_tolerance": stats.base, "floor_factor": FLOOR_FACTOR, "max_abs": stats.max_abs,
               "noise_floor": stats.floors, "halting": stats.halting, "cases": cases, "gated": gated,
               "failures": stats.failures[:10]}
    deltas = ", ".join(f"{k} {v:.2e}" for k, v in stats.max_abs.items())
    if not stats.finite:
        return LevelResult("L3", False, "non-finite output", worst_tensor=name, worst=worst, tolerance=tol,
                           details=details)
    if stats.failures:
        return LevelResult("L3", False, stats.failures[0], worst_tensor=name, worst=worst, tolerance=tol,
                           details=details)
    h = stats.halting
    return LevelResult("L3", True, f"max|Δ| {deltas}; halting {h['agree']}/{h['samples']} (+{h['near_tie']} near "
                                   f"ties){'' if gated else ' [measured, not gated]'}",
                       worst_tensor=name, worst=worst, tolerance=tol, details=details)


# --------------------------------------------------------------------------------------------------
# L4 real puzzles
# --------------------------------------------------------------------------------------------------
def real_inputs(source: str, n: int, canvas: int) -> tuple[list[str], np.ndarray]:
    """Test inputs of the first tasks of an ARC source, encoded with the data layer's tokens."""
    from hrm_edge.data.arc import load_tasks
    from hrm_edge.data.tokens import encode_grid

    tasks = load_tasks(source, canvas=canvas).tasks
    names, rows = [], []
    for task in tasks:
        for pair in task.test:
            names.append(task.id)
            rows.append(encode_grid(pair.input, canvas).astype(np.int32))
            if len(rows) >= n:
                return names, np.stack(rows)
    if not rows:
        raise HrmEdgeError(f"no usable ARC tasks for L4 in {source!r}")
    return names, np.stack(rows)


def _batches(n: int, static: int | None) -> list[np.ndarray]:
    if static is None:
        return [np.arange(n)]
    idx = np.arange(n)
    out = []
    for i in range(0, n, static):
        chunk = idx[i:i + static]
        out.append(np.concatenate([chunk, np.full(static - len(chunk), chunk[-1])]))
    return out


@dataclass
class _FreeRun:
    """L4's per-segment record, maxima over all batches: the runtime's gap to fp32 PyTorch, PyTorch's own
    fp32-vs-float64 gap (the floor) and the tolerance that floor gives, per output kind."""

    base: float
    segments: list[dict[str, dict[str, float]]] = field(default_factory=list)
    worst: tuple[str, float, float, float] = ("", 0.0, 0.0, 0.0)  # tensor, |Δ|, tolerance, |Δ| / tolerance

    def row(self, k: int) -> dict[str, dict[str, float]]:
        while len(self.segments) <= k:
            self.segments.append({"gap": {}, "floor": {}, "tolerance": {}})
        return self.segments[k]

    def note_floor(self, k: int, kind: str, floor: float) -> float:
        r = self.row(k)
        r["floor"][kind] = max(r["floor"].get(kind, 0.0), floor)
        tol = max(self.base, FLOOR_FACTOR * floor)
        r["tolerance"][kind] = max(r["tolerance"].get(kind, 0.0), tol)
        return tol

    def note_gap(self, k: int, kind: str, gap: float, tol: float) -> bool:
        r = self.row(k)
        r["gap"][kind] = max(r["gap"].get(kind, 0.0), gap)
        ratio = gap / tol if np.isfinite(gap) else float("inf")
        if ratio > self.worst[3]:
            self.worst = (kind, gap, tol, ratio)
        return gap <= tol


def check_l4(runner: Any, torch_model: Any, spec: ModelSpec, precision: str, source: str, n_puzzles: int,
             static_batch: int | None, log: Log | None = None) -> LevelResult:
    """Free-running ACT on real puzzles, judged segment by segment against PyTorch's own fp32 sensitivity.

    For every batch the runtime, fp32 PyTorch and float64 PyTorch each run their own trajectory. Per
    segment and output kind, the runtime's max|Δ| to fp32 PyTorch must be <= max(base, FLOOR_FACTOR x
    floor), floor = max|fp32 PyTorch - float64 PyTorch| at that segment: a recurrence that amplifies
    rounding widens the tolerance exactly as much as it moves PyTorch itself, and no more. At each
    sample's halting segment its raw argmax grid (all canvas cells, decodable or not) is compared with
    PyTorch's; a differing cell is allowed only where PyTorch's top-two logit margin is within twice
    that segment's logit tolerance (the most two logits within tolerance can swap), and a differing
    halting step only where the q decision sits within the q tolerance of some segment.
    """
    from hrm_edge.data.tokens import PAD

    canvas = torch_model.config.canvas
    names, tokens = real_inputs(source, n_puzzles, canvas)
    # every model gets the bundle's rows: L2 proved the table equals the checkpoint's in the bundle's dtype,
    # and an fp16 table's rounding is a deployment choice `compare` reports, not a fault of the graph
    pe = runner.puzzle_vectors(runner.puzzle_ids(names))
    gated = precision == "fp32"
    base = BASE_TOL[precision]
    modes = list(spec.halt_modes) if runner.act_mode == "step" else [runner.baked_halt]
    inst = None if runner.act_mode == "step" else _instrumented(runner, spec)
    per_mode = {h: {"inputs": 0, "grids_identical": 0, "halting_agree": 0, "halting_near_tie": 0, "cells": 0,
                    "cells_differ": 0, "cells_within_tolerance": 0} for h in modes}
    fr = _FreeRun(base)
    failures: list[str] = []
    finite = True

    def pick(rows: Any, a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]

    t32 = TorchRunner(spec=spec, model=torch_model)
    t64 = TorchF64Runner(spec=spec, model=torch_model)
    with t32, t64:
        for idx in _batches(len(names), static_batch):
            if log:
                log(f"L4 {len(idx)} ARC test input(s), halt {'/'.join(modes)}")
            tok = tokens[idx]
            keep = np.unique(idx, return_index=True)[1]  # drop the padding repeats of a static batch
            o = _trace(runner, inst, tok, pick(idx, pe), spec)
            r32 = record_step(t32, tok, pick(idx, pe), "max")
            r64 = record_step(t64, tok, pick(idx, pe), "max") if gated else None
            finite &= bool(np.isfinite(o.result.logits).all())
            tol: list[dict[str, float]] = []
            for k, ref in enumerate(r32.outputs):
                tol.append({})
                for name, want in ref.items():
                    fl = _max_abs(want[keep], r64.outputs[k][name][keep]) if r64 is not None else 0.0
                    tol[k][name] = fr.note_floor(k, _kind(name), fl)
                    if k < len(o.outputs) and name in o.outputs[k]:
                        gap = _max_abs(o.outputs[k][name][keep], want[keep])
                        if not fr.note_gap(k, _kind(name), gap, tol[k][name]) and gated:
                            failures.append(f"segment {k + 1}: {name} |Δ| {gap:.3g} > {tol[k][name]:.3g} "
                                            f"({FLOOR_FACTOR:g} x the fp32 floor {fl:.3g}, or {base:g})")
            qh, qc = _qs(r32.outputs)
            q_tol = [max(t["q_halt"], t["q_continue"]) for t in tol]
            for halt in modes:
                st = per_mode[halt]
                got = _runtime_steps(o, halt, spec)
                want_steps = _halting_steps(qh, qc, halt, spec)
                for b in keep:
                    name = names[idx[b]]
                    st["inputs"] += 1
                    if got[b] != want_steps[b]:
                        if _near_tie(qh, qc, halt, spec, b, q_tol):
                            st["halting_near_tie"] += 1
                        elif gated:
                            failures.append(f"halt {halt}: {name} halts at segment {got[b]} in ONNX, {want_steps[b]} "
                                            f"in PyTorch, with no q-value within the fp32 tolerance of the rule")
                        continue
                    st["halting_agree"] += 1
                    k = int(got[b]) - 1
                    ref_logits = r32.outputs[k]["logits"][b]
                    run_logits = o.outputs[k]["logits"][b] if "logits" in o.outputs[k] else o.result.logits[b]
                    if "logits" not in o.outputs[k]:  # unrolled / loop: the final logits are all we see
                        gap = _max_abs(run_logits, ref_logits)
                        if not fr.note_gap(k, "logits", gap, tol[k]["logits"]) and gated:
                            failures.append(f"halt {halt}: {name} logits at segment {k + 1} |Δ| {gap:.3g} > "
                                            f"{tol[k]['logits']:.3g}")
                    po, pr = run_logits.argmax(-1), ref_logits.argmax(-1)
                    top2 = np.sort(ref_logits, axis=-1)[..., -2:]
                    margin = top2[..., 1] - top2[..., 0]
                    diff = po != pr
                    within = diff & (margin <= 2 * tol[k]["logits"])
                    counted = (po != PAD) | (pr != PAD)
                    st["grids_identical"] += int(not diff.any())
                    st["cells"] += int(counted.sum())
                    st["cells_differ"] += int((diff & counted).sum())
                    st["cells_within_tolerance"] += int(within.sum())
                    if (diff & ~within).any() and gated:
                        failures.append(f"halt {halt}: {int((diff & ~within).sum())} cell(s) of {name} differ where "
                                        f"PyTorch's top-two margin exceeds 2 x the logit tolerance "
                                        f"{tol[k]['logits']:.3g} of segment {k + 1}")
    for st in per_mode.values():
        st["cell_agreement"] = 1.0 - st["cells_differ"] / max(st["cells"], 1)
    if not finite:
        failures.insert(0, "non-finite logits")
    details = {"source": source, "tasks": sorted(set(names)), "base_tolerance": base, "floor_factor": FLOOR_FACTOR,
               "segments": [{"segment": k + 1, **r} for k, r in enumerate(fr.segments)], "modes": per_mode,
               "gated": gated, "failures": failures[:10], "puzzle_rows": "bundle index" if
               (runner.manifest.get("puzzle_emb") or {}).get("index_known") else "blank row 0 (identifiers unknown)"}
    summ = "; ".join(f"{h}: grids {s['grids_identical']}/{s['inputs']}, halting {s['halting_agree']}/{s['inputs']}, "
                     f"non-PAD cells {s['cell_agreement']:.4%}" for h, s in per_mode.items())
    kind, gap, tol_w, _ = fr.worst
    if gated and fr.segments:
        worst_seg = max(range(len(fr.segments)), key=lambda k: fr.segments[k]["gap"].get("logits", 0.0))
        r = fr.segments[worst_seg]
        summ += (f"; logits |Δ| {r['gap'].get('logits', 0.0):.2e} at segment {worst_seg + 1} "
                 f"(fp32 floor {r['floor'].get('logits', 0.0):.2e})")
    if failures and (gated or not finite):
        return LevelResult("L4", False, failures[0], worst_tensor=kind or "logits", worst=gap, tolerance=tol_w,
                           details=details)
    return LevelResult("L4", True, summ + ("" if gated else " [measured, not gated]"), worst_tensor=kind or None,
                       worst=gap, tolerance=tol_w, details=details)


# --------------------------------------------------------------------------------------------------
# the ladder
# --------------------------------------------------------------------------------------------------
def run_ladder(*, bundle: Path, manifest: dict[str, Any], torch_model: Any, target: str, l3_batches: tuple[int, ...],
               l4_source: str | None, l4_puzzles: int, log: Log | None = None, seed: int = 0) -> ParityReport:
    """L1..L4 in order, stopping at the first failure. `torch_model` is the prepared fp32 reference."""
    from hrm_edge.runtime.onnxruntime import OrtRunner

    precision = manifest["precision"]
    report = ParityReport(precision)
    path = bundle / manifest["onnx"]["file"]
    model = onnx.load(str(path))
    if log:
        log("L1 checker, shapes, lint")
    report.levels.append(check_l1(path, model, target, manifest["onnx"]["opset"]))
    if not report.ok:
        return report
    if log:
        log("L2 weights")
    report.levels.append(check_l2(model, torch_model, precision, bundle, manifest))
    if not report.ok:
        return report
    del model
    runner = OrtRunner.from_bundle(bundle)
    spec = runner.spec
    static = manifest["batch"] if isinstance(manifest["batch"], int) else None
    batches = (static,) if static else l3_batches
    with runner:
        report.levels.append(check_l3(runner, torch_model, spec, precision, batches, seed=seed, log=log))
        if not report.ok:
            return report
        if l4_source and l4_puzzles > 0:
            report.levels.append(check_l4(runner, torch_model, spec, precision, l4_source, l4_puzzles, static, log=log))
        else:
            report.levels.append(LevelResult("L4", True, "skipped (no ARC source / --l4-puzzles 0)",
                                             details={"skipped": True}))
    return report


__all__ = ["ParityReport", "LevelResult", "ParityError", "check_l1", "check_l2", "check_l3", "check_l4", "run_ladder",
           "instrument", "TorchF64Runner", "BASE_TOL", "DEFAULT_L4_SOURCE", "real_inputs"]
