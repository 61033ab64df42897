"""Comparing a trace with PyTorch: per-tensor maxima against tolerances, and the halting step each rule
gives from q-values (with the near-tie allowance), shared by L3 and L4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hrm_edge.export.parity.traces import OrtTrace
from hrm_edge.model.act import HaltTracker, halt_margin
from hrm_edge.runtime.base import ModelSpec


@dataclass
class Stats:
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


def tensor_kind(name: str) -> str:
    return "carry" if name.startswith("z_") else name


def max_abs_delta(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def q_values(outputs: list[dict[str, np.ndarray]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [o["q_halt"] for o in outputs], [o["q_continue"] for o in outputs]


def halting_steps(qh: list[np.ndarray], qc: list[np.ndarray], halt: str, spec: ModelSpec) -> np.ndarray:
    tracker = HaltTracker.for_spec(qh[0].shape[0], halt, spec)
    for k in range(1, len(qh) + 1):
        tracker.update(k, qh[k - 1], qc[k - 1])
        if tracker.done.all():
            break
    steps = tracker.steps
    steps[~tracker.done] = 0  # not halted within the segments available: never equal to a graph's answer
    return steps


def near_tie(qh: list[np.ndarray], qc: list[np.ndarray], halt: str, spec: ModelSpec, row: int,
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


NEAR_TIE_SHARE = 4  # at most 1 in this many halting decisions (and at least 1) may be excused as near ties


def halting_doubts(near: int, samples: int) -> str | None:
    """Why excused near ties are too many to be rounding, or None.

    A near tie needs a q margin within ~1e-4 of the rule's boundary: rare for q values of order 1. When many
    decisions differ "within the margin", the margin is not what decides them (a wrong halting rule, a wrong
    minimum step count, or a tolerance far too wide), so the level fails however wide its tolerance is.
    """
    cap = max(1, samples // NEAR_TIE_SHARE)
    if near > cap:
        return (f"{near} of {samples} halting decisions differ from PyTorch's and are excused only as near ties "
                f"(at most {cap} may be): more than rounding explains (wrong halting rule or minimum steps?)")
    return None


def before_minimum(got: int, spec: ModelSpec) -> bool:
    """Whether a runtime halted at a segment the rule never allows (below min_halt_steps): no q value excuses it."""
    return 0 < got < min(spec.min_halt_steps, spec.max_steps)


def runtime_steps(trace: OrtTrace, halt: str, spec: ModelSpec) -> np.ndarray:
    """Where the runtime halts each sample under `halt`: its own answer for the mode it ran, else (a step
    trace holds every segment's q-values, and segments do not depend on the halting rule) the host rule
    applied to its q-values, exactly what the shared driver would do."""
    if halt == trace.halt or not all("q_halt" in o for o in trace.outputs):
        return trace.result.steps
    return halting_steps(*q_values(trace.outputs), halt, spec)
