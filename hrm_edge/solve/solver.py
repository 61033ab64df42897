"""Solve ARC tasks: augment -> infer -> decode -> invert -> vote -> attempts -> score.

The steps are separate so `compare` can plan once and run the identical plan (same
augmentations, same batch composition, same order) through every runtime:

1. `plan_tasks`: for each test input of each task, N augmentations (identity first, then the
   augmentations the model's puzzle table knows for that task, then seeded random dihedral x
   colour permutations), each encoded onto the canvas with its puzzle identifier name, and the
   jobs cut into fixed batches.
2. `make_batches`: the plan's batches as tensors for one runtime, with that runtime's puzzle
   vectors (blank row 0 where its table does not know the identifier).
3. `runtime.batches.run_batches`: the shared ACT driver over every batch.
4. `decide`: decode each prediction (an undecodable one is counted, not raised on), invert its
   augmentation, vote per test input, keep `attempts` grids, score where solutions are known.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrm_edge.data.arc import ArcTask, TaskError
from hrm_edge.data.augment import Augmentation, random_augmentations
from hrm_edge.data.tokens import PAD, decode_grid_checked, encode_grid
from hrm_edge.runtime.batches import Batch, RunRecord
from hrm_edge.solve.answers import TestAnswer
from hrm_edge.solve.runners import PuzzleTable
from hrm_edge.solve.vote import Candidate, attempts_from, vote


@dataclass(frozen=True)
class SolveOptions:
    augment: int = 8
    attempts: int = 2
    halt: str = "max"
    batch: int = 16
    seed: int = 0
    schedule: str = "static"  # static batches, or continuous (halted slots take the next puzzle)


@dataclass
class Job:
    """One model input: an augmented test input of a task."""

    task_id: str
    test_index: int
    aug: Augmentation
    identifier: str  # puzzle identifier name: task id, or "{task}_{aug.name}"
    tokens: np.ndarray  # (seq_len,) uint8


@dataclass
class Plan:
    tasks: list[ArcTask]
    jobs: list[Job]
    batches: list[list[int]]  # job indices per batch, in run order
    canvas: int
    options: SolveOptions
    errors: list[TaskError] = field(default_factory=list)  # tasks that could not be planned

    @property
    def n_test_inputs(self) -> int:
        return sum(len(t.test) for t in self.tasks)


def identifier_name(task_id: str, aug: Augmentation) -> str:
    """The reference's puzzle identifier for a task under an augmentation."""
    return task_id if aug.is_identity else f"{task_id}_{aug.name}"


def known_augmentations(task_id: str, table: PuzzleTable | None) -> list[Augmentation]:
    """Augmentations of this task that the model's puzzle table has identifiers for, in row order."""
    if table is None or not table.names:
        return []
    prefix = task_id + "_"
    found: list[tuple[int, Augmentation]] = []
    for name, row in table.names.items():
        if name == task_id:
            found.append((row, Augmentation.identity()))
        elif name.startswith(prefix):
            try:
                aug = Augmentation.from_name(name[len(prefix):])
            except ValueError:
                continue
            found.append((row, aug))
    found.sort(key=lambda x: x[0])
    return [a for _, a in found]


def task_rng(seed: int, task_id: str) -> np.random.Generator:
    """Per-task generator: the same task gets the same augmentations whatever else is solved with it."""
    return np.random.default_rng([seed, zlib.crc32(task_id.encode())])


def choose_augmentations(task: ArcTask, n: int, seed: int, table: PuzzleTable | None = None,
                         canvas: int = 30) -> list[Augmentation]:
    """n distinct augmentations: identity, then those the table knows, then seeded random ones.

    A known augmentation with a canvas offset (translation) keeps it, so its identifier matches; it
    is used only when every grid of the task fits the canvas at that offset.
    """
    if n < 1:
        raise ValueError("augment must be >= 1")
    out: list[Augmentation] = [Augmentation.identity()]
    seen = {(0, out[0].colors, (0, 0))}
    shapes = task.shapes()
    for aug in known_augmentations(task.id, table):
        if len(out) >= n:
            break
        key = (aug.dihedral, aug.colors, aug.offset)
        if key not in seen and aug.fits(shapes, canvas):
            seen.add(key)
            out.append(aug)
    if len(out) < n:
        for aug in random_augmentations(task_rng(seed, task.id), n + len(out), include_identity=False):
            key = (aug.dihedral, aug.colors, aug.offset)
            if key not in seen:
                seen.add(key)
                out.append(aug)
            if len(out) >= n:
                break
    return out


def plan_tasks(tasks: list[ArcTask], options: SolveOptions, canvas: int, table: PuzzleTable | None = None) -> Plan:
    """Jobs for every test input of every task, and their batches (order fixed by the task list)."""
    if options.batch < 1:
        raise ValueError("batch must be >= 1")
    jobs: list[Job] = []
    kept: list[ArcTask] = []
    errors: list[TaskError] = []
    for task in tasks:
        augs = choose_augmentations(task, options.augment, options.seed, table, canvas)
        task_jobs: list[Job] = []
        try:
            for ti, pair in enumerate(task.test):
                for aug in augs:
                    toks = encode_grid(aug.apply(pair.input), canvas, offset=aug.offset)
                    task_jobs.append(Job(task.id, ti, aug, identifier_name(task.id, aug), toks))
        except ValueError as exc:  # e.g. a grid larger than this model's canvas
            errors.append(TaskError(task.id, f"cannot encode for a {canvas}x{canvas} model: {exc}",
                                    task.source or None, n_test=len(task.test)))
            continue
        kept.append(task)
        jobs.extend(task_jobs)
    idx = list(range(len(jobs)))
    batches = [idx[s:s + options.batch] for s in range(0, len(idx), options.batch)]
    return Plan(kept, jobs, batches, canvas, options, errors)


@dataclass
class BatchSet:
    """A plan's batches for one runtime, plus which jobs fell back to the blank identifier."""

    batches: list[Batch]
    known: np.ndarray  # [n_jobs] bool: identifier found in this runtime's table
    uses_puzzle_emb: bool

    @property
    def n_blank(self) -> int:
        return int((~self.known).sum()) if self.uses_puzzle_emb else 0


def make_batches(plan: Plan, table: PuzzleTable) -> BatchSet:
    names = [j.identifier for j in plan.jobs]
    ids, known = table.ids_for(names)
    out = []
    for b in plan.batches:
        toks = np.stack([plan.jobs[i].tokens for i in b]).astype(np.int32) if b else np.zeros((0, plan.canvas ** 2),
                                                                                                np.int32)
        pe = table.vectors(ids[b]) if table.used else None
        out.append(Batch(toks, pe, tuple(b)))
    return BatchSet(out, known, table.used)


# --------------------------------------------------------------------------------------------------
# decisions
# --------------------------------------------------------------------------------------------------
@dataclass
class TaskScore:
    task_id: str
    n_test: int
    n_known: int  # test inputs with a known solution
    pass1: float | None  # fraction of its known test outputs right on attempt 1
    pass2: float | None  # ... within the first two attempts


@dataclass
class Decision:
    answers: list[TestAnswer]
    per_job_grid: list[np.ndarray | None]  # decoded + inverted grid per job (None: undecodable)
    undecodable: int
    undecodable_reasons: dict[str, int]
    #: non-PAD token accuracy over puzzles whose solution is known, in each puzzle's augmented frame
    #: (never PAD-inflated: a model that writes only background scores low here); None if none known
    token_accuracy: float | None = None

    def submission(self) -> dict[str, list[dict[str, list[list[int]]]]]:
        from hrm_edge.solve.submission import build_submission

        return build_submission(self.answers)

    def scores(self) -> list[TaskScore]:
        return score_answers(self.answers)


def _reason_kind(reason: str) -> str:
    """Group decode failures by kind: "row N ends at column N without EOS", ..."""
    return re.sub(r"-?\d+", "N", reason.split(" (")[0])[:70]


def decide(plan: Plan, record: RunRecord, attempts: int | None = None) -> Decision:
    """Decode, invert and vote every job of a plan from one runtime's outputs."""
    k = attempts or plan.options.attempts
    preds = record.flat("predictions").reshape(-1, plan.canvas ** 2) if record.n else np.zeros((0, plan.canvas ** 2))
    qh = record.flat("q_halt")
    order = [i for b in plan.batches for i in b]
    grid_of: list[np.ndarray | None] = [None] * len(plan.jobs)
    q_of = np.zeros(len(plan.jobs), np.float32)
    reasons: dict[str, int] = {}
    solutions = {(t.id, i): p.output for t in plan.tasks for i, p in enumerate(t.test)}
    tok_hit = tok_total = 0
    for row, j in enumerate(order):
        job = plan.jobs[j]
        sol = solutions.get((job.task_id, job.test_index))
        target = None if sol is None else job.aug.apply(sol)
        if target is not None and max(target.shape) <= plan.canvas:
            label = encode_grid(target, plan.canvas, offset=job.aug.offset)
            real = label != PAD
            tok_hit += int((preds[row][real] == label[real]).sum())
            tok_total += int(real.sum())
        dec = decode_grid_checked(preds[row], plan.canvas, offset=job.aug.offset)
        q_of[j] = qh[row]
        if dec.grid is None:
            kind = _reason_kind(dec.reason or "undecodable")
            reasons[kind] = reasons.get(kind, 0) + 1
            continue
        grid_of[j] = job.aug.invert(dec.grid).astype(np.uint8)
    by_test: dict[tuple[str, int], list[int]] = {}
    for j, job in enumerate(plan.jobs):
        by_test.setdefault((job.task_id, job.test_index), []).append(j)
    answers: list[TestAnswer] = []
    for task in plan.tasks:
        for ti, pair in enumerate(task.test):
            js = by_test.get((task.id, ti), [])
            cands = [Candidate(grid_of[j], float(q_of[j]), plan.jobs[j].aug.name) for j in js  # type: ignore[arg-type]
                     if grid_of[j] is not None]
            ranked = vote(cands)
            atts = attempts_from(ranked, k)
            sol = pair.output
            correct = None if sol is None else [bool(a.shape == sol.shape and np.array_equal(a, sol)) for a in atts]
            answers.append(TestAnswer(task.id, ti, atts, ranked, len(js), len(js) - len(cands), sol, correct))
    return Decision(answers, grid_of, sum(reasons.values()), reasons,
                    tok_hit / tok_total if tok_total else None)


def score_answers(answers: list[TestAnswer]) -> list[TaskScore]:
    """Exact-match scores per task (ARC Prize rule: a task scores the fraction of its test outputs right)."""
    per: dict[str, list[TestAnswer]] = {}
    for a in answers:
        per.setdefault(a.task_id, []).append(a)
    out = []
    for tid, ans in per.items():
        known = [a for a in ans if a.correct is not None]
        if known:
            p1 = float(np.mean([a.correct[0] for a in known]))  # type: ignore[index]
            p2 = float(np.mean([any(a.correct[:2]) for a in known]))  # type: ignore[index]
        else:
            p1 = p2 = None
        out.append(TaskScore(tid, len(ans), len(known), p1, p2))
    return out


def summarize_scores(scores: list[TaskScore]) -> dict[str, Any]:
    """Mean over tasks with known solutions (None when no solution is known)."""
    known = [s for s in scores if s.n_known]
    if not known:
        return {"tasks": len(scores), "tasks_with_solutions": 0, "pass@1": None, "pass@2": None}
    return {
        "tasks": len(scores), "tasks_with_solutions": len(known),
        "pass@1": float(np.mean([s.pass1 for s in known])), "pass@2": float(np.mean([s.pass2 for s in known])),
        "solved@1": int(sum(s.pass1 == 1.0 for s in known)), "solved@2": int(sum(s.pass2 == 1.0 for s in known)),
    }
