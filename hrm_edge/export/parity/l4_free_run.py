"""L4 real puzzles, free running: ARC test inputs through ONNX Runtime, fp32 PyTorch and float64 PyTorch, each
on its own trajectory, judged per segment by the model's own fp32 sensitivity (see the package docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export.parity.l3_teacher_forced import _instrumented, _trace
from hrm_edge.export.parity.references import TorchF64Runner
from hrm_edge.export.parity.report import BASE_TOL, FLOOR_FACTOR, LevelResult, Log
from hrm_edge.export.parity.stats import (
    before_minimum,
    halting_doubts,
    halting_steps,
    max_abs_delta,
    near_tie,
    q_values,
    runtime_steps,
    tensor_kind,
)
from hrm_edge.export.parity.traces import record_step
from hrm_edge.runtime.base import ModelSpec
from hrm_edge.runtime.torch import TorchRunner


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
                    fl = max_abs_delta(want[keep], r64.outputs[k][name][keep]) if r64 is not None else 0.0
                    tol[k][name] = fr.note_floor(k, tensor_kind(name), fl)
                    if k < len(o.outputs) and name in o.outputs[k]:
                        gap = max_abs_delta(o.outputs[k][name][keep], want[keep])
                        if not fr.note_gap(k, tensor_kind(name), gap, tol[k][name]) and gated:
                            failures.append(f"segment {k + 1}: {name} |Δ| {gap:.3g} > {tol[k][name]:.3g} "
                                            f"({FLOOR_FACTOR:g} x the fp32 floor {fl:.3g}, or {base:g})")
            qh, qc = q_values(r32.outputs)
            q_tol = [max(t["q_halt"], t["q_continue"]) for t in tol]
            for halt in modes:
                st = per_mode[halt]
                got = runtime_steps(o, halt, spec)
                want_steps = halting_steps(qh, qc, halt, spec)
                for b in keep:
                    name = names[idx[b]]
                    st["inputs"] += 1
                    if got[b] != want_steps[b]:
                        if before_minimum(int(got[b]), spec) and gated:
                            failures.append(f"halt {halt}: {name} halts at segment {got[b]} in ONNX, before the "
                                            f"rule's minimum of {spec.min_halt_steps}")
                        elif near_tie(qh, qc, halt, spec, b, q_tol):
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
                        gap = max_abs_delta(run_logits, ref_logits)
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
    for halt, st in per_mode.items():
        st["cell_agreement"] = 1.0 - st["cells_differ"] / max(st["cells"], 1)
        doubt = halting_doubts(st["halting_near_tie"], st["inputs"])
        if doubt and gated:
            failures.append(f"halt {halt}: {doubt}")
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
