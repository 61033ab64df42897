"""`hrm-edge solve` as one call: ARC tasks -> answers on one runtime -> submission, scores file, PNGs.

The steps are solver.py's (plan, batches, run, decide); this module strings them together for one
runtime and writes what the command promises: the submission (validated first: an invalid one is a
bug and is never written), the scores file beside it and, when asked, one PNG per task. Latency is
measuring, not solving: `timings(record)` (the command passes bench's percentiles) fills it in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_edge import interrupt
from hrm_edge.data.arc import ArcTask, TaskError
from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime.batches import RunRecord
from hrm_edge.solve.answers import TestAnswer
from hrm_edge.solve.runners import PuzzleTable, Runtime
from hrm_edge.solve.schedule import run_batches_scheduled
from hrm_edge.solve.solver import (
    Decision,
    Plan,
    SolveOptions,
    TaskScore,
    decide,
    make_batches,
    plan_tasks,
    summarize_scores,
)

Say = Callable[[str], None]
#: `start(label, total) -> advance(n)`: a progress display for a run of `total` puzzles
ProgressFn = Callable[[str, int], Callable[[int], None]]


def _quiet(_: str) -> None:
    return None


def load_task_list(tasks: str, canvas: int, limit: int | None = None, say: Say = _quiet
                   ) -> tuple[list[ArcTask], list[TaskError]]:
    """One ARC source (file, folder, combined JSON or named set): its tasks (the first `limit`) and the
    problems that skipped some (each also said as a `skipped:` line). No task and no problem is an error."""
    from hrm_edge.data.arc import load_sources

    res = load_sources([tasks], canvas=canvas)  # one source; repeated task ids are reported, not merged
    problems = res.errors + res.duplicates
    for p in problems:
        say(f"skipped: {p}")
    picked = res.tasks[:limit] if limit else res.tasks
    if not picked and not problems:
        raise HrmEdgeError("no tasks found", tasks)
    return picked, problems


def blank_note(n_blank: int, n: int, table: PuzzleTable) -> str:
    where = f"index from {table.source}" if table.source else "no identifier index found"
    return (f"note: {n_blank} of {n} puzzles use the blank puzzle identifier (0): the model's table has no row for "
            f"that task+augmentation ({where}); answers for unseen tasks are expected to be poor")


@dataclass
class SolveRun:
    """What one `solve` produced: the plan, the runtime's record, the decision and the files written."""

    label: str
    plan: Plan
    record: RunRecord
    decision: Decision
    scores: list[TaskScore]
    summary: dict[str, Any]
    latency: dict[str, float]
    wall_s: float
    n_blank: int
    problems: list[str] = field(default_factory=list)  # one line per problem that skipped a task
    placeholders: dict[str, int] = field(default_factory=dict)  # skipped task id -> placeholder entries written


    def answers_by_task(self) -> dict[str, list[TestAnswer]]:
        by_task: dict[str, list[TestAnswer]] = {}
        for a in self.decision.answers:
            by_task.setdefault(a.task_id, []).append(a)
        return by_task


def solve_tasks(rt: Runtime, artifact: Path, tasks: str, options: SolveOptions, out: Path, scores_path: Path, *,
                limit: int | None = None, render: Path | None = None, say: Say = _quiet,
                progress: ProgressFn | None = None,
                timings: Callable[[RunRecord], dict[str, float]] | None = None) -> SolveRun:
    """Solve the tasks of `tasks` on an opened runtime; write the submission `out`, `scores_path` and PNGs."""
    from hrm_edge.fileio import atomic_write_json
    from hrm_edge.solve.render import render_task_png
    from hrm_edge.solve.submission import (
        PLACEHOLDER,
        add_placeholders,
        skipped_tests,
        validate_submission,
        write_submission,
    )

    canvas = rt.runner.spec.canvas
    task_list, errors = load_task_list(tasks, canvas, limit, say)
    plan = plan_tasks(task_list, options, canvas, rt.puzzles)
    for e in plan.errors:
        say(f"skipped: {e}")
    errors = errors + plan.errors
    problems = [str(e) for e in errors]
    owed = skipped_tests(errors, {t.id for t in plan.tasks})
    bs = make_batches(plan, rt.puzzles)
    if bs.n_blank:
        say(blank_note(bs.n_blank, len(plan.jobs), rt.puzzles))
    say(f"{rt.label}: {len(plan.tasks)} tasks, {plan.n_test_inputs} test inputs x {options.augment} augmentations = "
        f"{len(plan.jobs)} puzzles in {len(plan.batches)} batches (halt {options.halt})")
    t0 = time.perf_counter()
    with rt.runner:
        rec = run_batches_scheduled(rt.runner, bs.batches, options.halt, schedule=options.schedule,
                                    slots=options.batch, warmup=False,
                                    on_batch=progress("solving", len(plan.jobs)) if progress else None)
    wall = time.perf_counter() - t0
    dec = decide(plan, rec)
    sub = dec.submission()
    add_placeholders(sub, owed, options.attempts)  # the ARC Prize format wants every task id
    bad = validate_submission(sub, plan.tasks, attempts=options.attempts, placeholders=owed)
    if bad:  # a bug, not a user error: never write an invalid file silently
        raise HrmEdgeError(f"internal error: built an invalid submission ({bad[0]})")
    write_submission(out, sub)
    if owed:
        say(f"placeholder attempts ({PLACEHOLDER}) in {out} for {len(owed)} skipped task(s): {', '.join(owed)}")
    interrupt.outcome(f"the submission {out} was written; the scores file and PNGs may be missing")
    scores = dec.scores()
    result = SolveRun(rt.label, plan, rec, dec, scores, summarize_scores(scores),
                      timings(rec) if timings is not None else {}, wall, bs.n_blank, problems, owed)
    if render is not None:
        render.mkdir(parents=True, exist_ok=True)
        by_task = result.answers_by_task()
        for t in plan.tasks:
            render_task_png(t, by_task[t.id], render / f"{t.id}.png")
    atomic_write_json(scores_path, {
        "runtime": rt.label, "artifact": str(artifact), "options": options.__dict__, "summary": result.summary,
        "token_accuracy_non_pad": dec.token_accuracy,
        "latency": result.latency, "wall_s": wall, "undecodable": dec.undecodable,
        "undecodable_reasons": dec.undecodable_reasons, "blank_identifiers": bs.n_blank, "skipped": problems,
        "placeholder_tasks": owed,
        "per_task": [s.__dict__ for s in scores],
    })
    return result


__all__ = ["SolveRun", "solve_tasks", "load_task_list", "blank_note"]
