"""The ARC Prize submission format, and scoring a submission against known solutions.

Format: `{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}` with one dict per test input,
in the task's test order; a grid is a list of rows of ints 0..9.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hrm_edge.errors import HrmEdgeError

if TYPE_CHECKING:
    from hrm_edge.data.arc import ArcTask
    from hrm_edge.solve.answers import TestAnswer

Submission = dict[str, list[dict[str, list[list[int]]]]]


def grid_to_json(grid: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in np.asarray(grid)]


def build_submission(answers: list[TestAnswer]) -> Submission:
    sub: Submission = {}
    for a in sorted(answers, key=lambda a: a.test_index):
        sub.setdefault(a.task_id, [])
    for a in answers:
        entries = sub[a.task_id]
        while len(entries) <= a.test_index:
            entries.append({})
        entries[a.test_index] = {f"attempt_{i + 1}": grid_to_json(g) for i, g in enumerate(a.attempts)}
    return sub


PLACEHOLDER = [[0]]  # the attempt written for a test input hrm-edge could not run (the ARC Prize format wants one)


def skipped_tests(errors: list[Any], answered: set[str]) -> dict[str, int]:
    """Task id -> test inputs owed placeholder attempts: every skipped task not answered under its id.

    `errors` are data.arc.TaskError (one per problem: several may name one task); a task whose file does not
    say how many test inputs it has gets one placeholder entry.
    """
    owed: dict[str, int] = {}
    for e in errors:
        if e.task_id not in answered:
            owed[e.task_id] = max(owed.get(e.task_id, 1), e.n_test or 1)
    return owed


def add_placeholders(sub: Submission, owed: dict[str, int], attempts: int = 2) -> None:
    """Give every skipped task its entries (PLACEHOLDER for each attempt), so the file lists every task id."""
    for tid, n in owed.items():
        sub[tid] = [{f"attempt_{k}": [list(r) for r in PLACEHOLDER] for k in range(1, attempts + 1)}
                    for _ in range(n)]


def _is_grid(g: Any) -> bool:
    if not isinstance(g, list) or not g or not all(isinstance(r, list) and r for r in g):
        return False
    w = len(g[0])
    return all(len(r) == w and all(type(v) is int and 0 <= v <= 9 for v in r) for r in g)


def validate_submission(sub: Any, tasks: list[ArcTask] | None = None, attempts: int = 2,
                        placeholders: dict[str, int] | None = None) -> list[str]:
    """Problems with a submission (empty list: valid). With `tasks` (and the skipped tasks' `placeholders`,
    id -> test inputs), checks ids and test counts too."""
    problems: list[str] = []
    if not isinstance(sub, dict):
        return [f"submission must be an object task_id -> list, got {type(sub).__name__}"]
    for tid, entries in sub.items():
        if not isinstance(entries, list) or not entries:
            problems.append(f"{tid}: must be a non-empty list of attempt dicts")
            continue
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                problems.append(f"{tid}[{i}]: must be a dict of attempts")
                continue
            for k in range(1, attempts + 1):
                if f"attempt_{k}" not in e:
                    problems.append(f"{tid}[{i}]: missing attempt_{k}")
                elif not _is_grid(e[f"attempt_{k}"]):
                    problems.append(f"{tid}[{i}].attempt_{k}: not a rectangular grid of colours 0..9")
    if tasks is not None:
        want = {**(placeholders or {}), **{t.id: len(t.test) for t in tasks}}
        for tid, n in want.items():
            if tid not in sub:
                problems.append(f"{tid}: missing from the submission")
            elif isinstance(sub[tid], list) and len(sub[tid]) != n:
                problems.append(f"{tid}: {len(sub[tid])} entries for {n} test inputs")
        for tid in sub:
            if tid not in want:
                problems.append(f"{tid}: not one of the solved tasks")
    return problems


def write_submission(path: str | Path, sub: Submission) -> Path:
    """Write atomically (temp file + rename) so an interrupted run never leaves half a file."""
    import json

    from hrm_edge.fileio import atomic_write_bytes

    p = Path(path)
    if p.is_dir():
        raise HrmEdgeError("is a folder; --out takes a file name such as submission.json", p)
    atomic_write_bytes(p, lambda f: f.write(json.dumps(sub, separators=(",", ":")).encode()))
    return p


def score_submission(sub: Submission, tasks: list[ArcTask]) -> dict[str, Any]:
    """ARC Prize scoring of a submission file: per task the fraction of test outputs matched by any attempt."""
    per: dict[str, dict[str, float]] = {}
    for t in tasks:
        known = [(i, p.output) for i, p in enumerate(t.test) if p.output is not None]
        if not known or t.id not in sub:
            continue
        hit1 = hit2 = 0
        for i, sol in known:
            e = sub[t.id][i] if i < len(sub[t.id]) else {}
            a1 = e.get("attempt_1")
            a2 = e.get("attempt_2")
            s = sol.tolist()
            hit1 += a1 == s
            hit2 += (a1 == s) or (a2 == s)
        per[t.id] = {"pass@1": hit1 / len(known), "pass@2": hit2 / len(known)}
    if not per:
        return {"tasks": 0, "pass@1": None, "pass@2": None, "per_task": {}}
    return {"tasks": len(per), "pass@1": float(np.mean([v["pass@1"] for v in per.values()])),
            "pass@2": float(np.mean([v["pass@2"] for v in per.values()])), "per_task": per}
