"""L3 synthetic parity, segment by segment, teacher-forced: random token grids through the bundle in ONNX
Runtime, every segment re-run in PyTorch from the same carry (see the package docstring for the gate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from hrm_edge.export.parity.references import TorchF64Runner, as_float64
from hrm_edge.export.parity.report import BASE_TOL, FLOOR_FACTOR, LevelResult, Log
from hrm_edge.export.parity.stats import (
    Stats,
    before_minimum,
    halting_doubts,
    halting_steps,
    max_abs_delta,
    near_tie,
    runtime_steps,
    tensor_kind,
)
from hrm_edge.export.parity.traces import OrtTrace, instrument, record_graph, record_step
from hrm_edge.runtime.base import ModelSpec
from hrm_edge.runtime.torch import TorchRunner


def teacher_forced(trace: OrtTrace, t32: TorchRunner, t64: TorchF64Runner, halts: str | list[str], spec: ModelSpec,
                   stats: Stats, case: str) -> None:
    """Re-run each recorded segment in PyTorch from ORT's own carry; compare; check the halting per mode."""
    qh, qc, logits = [], [], []
    ref64: dict[int, dict[str, np.ndarray]] = {}

    def floor(k: int, name: str, ref: np.ndarray, rows: Any = slice(None)) -> float:
        if k not in ref64:
            ref64[k] = t64.infer(as_float64(trace.feeds[k]))
        return max_abs_delta(ref[rows], ref64[k][name][rows])

    def compare(k: int, name: str, got: np.ndarray, ref: np.ndarray, rows: Any = slice(None)) -> None:
        d = max_abs_delta(got[rows], ref[rows])
        tol = stats.base
        if d > tol and stats.gated:
            fl = floor(k, name, ref, rows)
            stats.floors[tensor_kind(name)] = max(stats.floors.get(tensor_kind(name), 0.0), fl)
            tol = max(tol, FLOOR_FACTOR * fl)
        stats.add(tensor_kind(name), d, tol, f"{case} segment {k + 1}")

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
        got = runtime_steps(trace, halt, spec)
        want = halting_steps(qh, qc, halt, spec)
        stats.halting["samples"] += int(want.size)
        for b in range(want.size):
            if want[b] == got[b]:
                stats.halting["agree"] += 1
            elif before_minimum(int(got[b]), spec) and stats.gated:
                stats.failures.append(f"{case} halt {halt}: sample {b} halts at segment {got[b]} in ONNX, before the "
                                      f"rule's minimum of {spec.min_halt_steps}")
            elif near_tie(qh, qc, halt, spec, b, stats.base):
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
    stats = Stats(BASE_TOL[precision], gated)
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
                          "steps": {h: runtime_steps(trace, h, spec).tolist() for h in modes}})
    doubt = halting_doubts(stats.halting["near_tie"], stats.halting["samples"])
    if doubt and gated:
        stats.failures.append(doubt)
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
