"""`compare`: the same tasks, augmentations and batches through every runtime, one table vs PyTorch.

The plan (jobs and batch composition) is made once, from the reference checkpoint's puzzle
table, and replayed unchanged on every runtime, so halting rules that depend on batch company
(the lite family's `batch-mean`) see the same company everywhere. Each runtime uses its own copy
of the puzzle-embedding table (e.g. the bundle's fp16 rows): that difference is part of what is
measured. A runtime that cannot run here is a row with its reason.

Beside the runtimes the report carries the floor: a baseline that answers every test input with its task's two
most frequent demonstration outputs (solve/baseline.py), scored the same way, so every pass@k is read against
it. Each row's answers are kept in the ARC Prize submission format (`submissions`).

This is solving with a report (accuracy and agreement with PyTorch); bench/compare.py adds the
latency percentiles and the machine, and draws the table, markdown and PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.arc import ArcTask
from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.runtime.batches import RunRecord, run_batches
from hrm_edge.solve import baseline
from hrm_edge.solve.answers import TestAnswer
from hrm_edge.solve.runners import Runtime, probe_runtime
from hrm_edge.solve.solver import (
    Decision,
    Plan,
    SolveOptions,
    decide,
    make_batches,
    plan_tasks,
    score_answers,
    summarize_scores,
)
from hrm_edge.solve.submission import Submission
from hrm_edge.solve.vote import grid_key


@dataclass
class RuntimeRow:
    label: str
    kind: str
    artifact: str
    status: str  # ok | unavailable | error
    reason: str = ""
    size_bytes: int = 0
    device: str = ""
    pass1: float | None = None
    pass2: float | None = None
    token_acc: float | None = None  # non-PAD token accuracy against the known solutions
    grid_match_pct: float | None = None  # puzzles whose decoded grid equals PyTorch's
    steps_match_pct: float | None = None  # puzzles halting after the same number of segments
    answer_match_pct: float | None = None  # test inputs whose attempts equal PyTorch's
    max_abs_dlogit: float | None = None
    mean_abs_dlogit: float | None = None
    latency: dict[str, float] = field(default_factory=dict)  # filled by `timings` (bench/compare.py)
    blank_identifiers: int = 0
    undecodable: int = 0
    puzzles: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class CompareReport:
    rows: list[RuntimeRow]
    tasks: int
    test_inputs: int
    puzzles: int
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)  # filled by bench/compare.py with the timings
    #: the reference runtime's answer per test input (attempts, solution, right/wrong), for rendering; not in JSON
    answers: list[Any] = field(default_factory=list)
    #: each row's answers in the ARC Prize submission format (None: the row did not run); not in JSON
    submissions: list[Submission | None] = field(default_factory=list)
    #: the floor (solve/baseline.py), scored like the rows; a table row under them, its own key in JSON (the
    #: `rows` stay runtimes, so what reads them needs no case for it)
    baseline: RuntimeRow | None = None
    baseline_answers: list[Any] = field(default_factory=list)  # its answers, as `answers`; not in JSON

    @property
    def table_rows(self) -> list[RuntimeRow]:
        """What a table shows: every runtime, then the baseline."""
        return self.rows + ([self.baseline] if self.baseline is not None else [])

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "test_inputs": self.test_inputs, "puzzles": self.puzzles,
                "options": self.options, "notes": self.notes, "machine": self.machine,
                "rows": [asdict(r) for r in self.rows],
                "baseline": asdict(self.baseline) if self.baseline is not None else None}


def logit_deltas(ref: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> dict[str, float]:
    """max and mean |other - ref| over every logit (batches must line up)."""
    mx, total, count = 0.0, 0.0, 0
    for a, b in zip(ref, other, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"logit shapes differ: {a.shape} vs {b.shape}")
        d = np.abs(b.astype(np.float64) - a.astype(np.float64))
        mx = max(mx, float(d.max()) if d.size else 0.0)
        total += float(d.sum())
        count += d.size
    return {"max_abs": mx, "mean_abs": total / count if count else 0.0}


def percent(num: int | float, den: int | float) -> float | None:
    return None if not den else 100.0 * float(num) / float(den)


def _check_compatible(ref: Runtime, rt: Runtime) -> str | None:
    a, b = ref.runner.spec, rt.runner.spec
    for key in ("family", "seq_len", "vocab_size", "puzzle_emb_ndim", "max_steps"):
        if getattr(a, key) != getattr(b, key):
            return f"not the same model as the checkpoint: {key} {getattr(b, key)} vs {getattr(a, key)}"
    return None


def run_plan(rt: Runtime, plan: Plan, halt: str, on_batch: Callable[[int], None] | None, warmup: bool
             ) -> tuple[RunRecord, Decision, int]:
    """One runtime through a fixed plan: its run record, the voted decision, and how many puzzles used the
    blank identifier."""
    bs = make_batches(plan, rt.puzzles)
    with rt.runner:
        rec = run_batches(rt.runner, bs.batches, halt, keep_logits=True, warmup=warmup, on_batch=on_batch)
    return rec, decide(plan, rec), bs.n_blank


def _answers_equal(a: Decision, b: Decision) -> int:
    return sum(all(grid_key(x) == grid_key(y) for x, y in zip(p.attempts, q.attempts, strict=True))
               for p, q in zip(a.answers, b.answers, strict=True))


def compare_runtimes(tasks: list[ArcTask], reference: Runtime, others: list[tuple[str, Path, dict[str, Any]]],
                     options: SolveOptions, *, warmup: bool = True,
                     progress: Callable[[str, int], Callable[[int], None]] | None = None,
                     timings: Callable[[RunRecord], dict[str, float]] | None = None) -> CompareReport:
    """Run `tasks` through the reference (torch) and every other runtime; one row each.

    `others` is a list of (kind, artifact, open kwargs). `progress(label, total)` may return a
    per-batch callback. `timings(record)` fills each row's `latency` (bench/compare.py passes its
    percentiles): solving records the batch times, measuring summarises them.
    """
    plan = plan_tasks(tasks, options, reference.runner.spec.canvas, reference.puzzles)
    notes: list[str] = [f"{e}" for e in plan.errors]
    n = len(plan.jobs)

    def cb(label: str) -> Callable[[int], None] | None:
        return progress(label, n) if progress else None

    ref_rec, ref_dec, ref_blank = run_plan(reference, plan, options.halt, cb(reference.label), warmup)
    ref_grids = ref_dec.per_job_grid
    order = [i for b in plan.batches for i in b]
    ref_steps = ref_rec.flat("steps")

    def row_from(rt: Runtime, rec: RunRecord, dec: Decision, blank: int, is_ref: bool) -> RuntimeRow:
        s = summarize_scores(dec.scores())
        row = RuntimeRow(rt.label, rt.kind, str(rt.artifact), "ok", size_bytes=rt.size_bytes, device=rt.device,
                         pass1=s["pass@1"], pass2=s["pass@2"], token_acc=dec.token_accuracy,
                         latency=timings(rec) if timings is not None else {},
                         blank_identifiers=blank, undecodable=dec.undecodable, puzzles=rec.n)
        if is_ref:
            row.grid_match_pct = row.steps_match_pct = row.answer_match_pct = 100.0
            row.max_abs_dlogit = row.mean_abs_dlogit = 0.0
            return row
        same = sum((g is None and r is None) or (g is not None and r is not None and grid_key(g) == grid_key(r))
                   for g, r in ((dec.per_job_grid[j], ref_grids[j]) for j in order))
        row.grid_match_pct = percent(same, n)
        row.steps_match_pct = percent(int((rec.flat("steps") == ref_steps).sum()), n)
        row.answer_match_pct = percent(_answers_equal(dec, ref_dec), len(ref_dec.answers))
        d = logit_deltas(ref_rec.logits or [], rec.logits or [])
        row.max_abs_dlogit, row.mean_abs_dlogit = d["max_abs"], d["mean_abs"]
        return row

    rows = [row_from(reference, ref_rec, ref_dec, ref_blank, True)]
    subs: list[Submission | None] = [ref_dec.submission()]
    if ref_blank:
        notes.append(f"{ref_blank} of {n} puzzles use the blank puzzle identifier (task+augmentation not in the "
                     f"model's table{'' if reference.puzzles.names else '; no identifier index found'})")
    for kind, artifact, kw in others:
        rt, reason, status = probe_runtime(kind, artifact, **kw)
        subs.append(None)  # replaced below when the runtime runs
        if rt is None:
            rows.append(RuntimeRow(f"{kind} {Path(artifact).name}", kind, str(artifact), status, reason or ""))
            continue
        bad = _check_compatible(reference, rt)
        if bad:
            rows.append(RuntimeRow(rt.label, kind, str(artifact), "error", bad, size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        try:
            rec, dec, blank = run_plan(rt, plan, options.halt, cb(rt.label), warmup)
        except HrmEdgeError as exc:  # MissingDependencyError at activation: cannot run here
            status = "unavailable" if isinstance(exc, MissingDependencyError) else "error"
            rows.append(RuntimeRow(rt.label, kind, str(artifact), status, str(exc), size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        except Exception as exc:  # a backend failing at run time is a row, not a crash of the whole table
            msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
            rows.append(RuntimeRow(rt.label, kind, str(artifact), "error", msg, size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        rows.append(row_from(rt, rec, dec, blank, False))
        subs[-1] = dec.submission()
    base = baseline.frequent_output_answers(plan.tasks, options.attempts)
    opts = asdict(options)
    return CompareReport(rows, len(plan.tasks), plan.n_test_inputs, n, opts, notes, answers=ref_dec.answers,
                         submissions=subs, baseline=baseline_row(base, ref_dec.answers), baseline_answers=base)


def baseline_row(answers: list[TestAnswer], reference: list[TestAnswer]) -> RuntimeRow:
    """The floor (solve/baseline.py) as a row, scored like the runtimes; `answers = torch` is its overlap with
    the reference runtime's attempts (how often the model merely answers the usual output)."""
    s = summarize_scores(score_answers(answers))
    same = sum(all(grid_key(x) == grid_key(y) for x, y in zip(a.attempts, b.attempts, strict=True))
               for a, b in zip(answers, reference, strict=True))
    return RuntimeRow(baseline.LABEL, baseline.KIND, "the tasks' demonstration outputs", "ok", pass1=s["pass@1"],
                      pass2=s["pass@2"], answer_match_pct=percent(same, len(reference)))
