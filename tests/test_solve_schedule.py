"""`solve --schedule continuous` (solve/schedule.py): the plan's puzzles through the continuous scheduler give
the RunRecord static batching gives, batch by batch, so `decide` writes the same submission."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _spread import spread_for_tasks

from hrm_edge.data.arc import load_tasks
from hrm_edge.errors import HrmEdgeError
from hrm_edge.solve.runners import open_runtime
from hrm_edge.solve.schedule import run_batches_scheduled
from hrm_edge.solve.solver import SolveOptions, decide, make_batches, plan_tasks


@pytest.fixture(scope="module")
def spread_ckpt(tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return spread_for_tasks(tmp_path_factory.mktemp("spread") / "spread.pt", load_tasks(tasks_dir).tasks, 5)


@pytest.mark.parametrize("halt", ["adaptive", "max"])
def test_continuous_record_and_submission_equal_static(spread_ckpt: Path, tasks_dir: Path, halt: str) -> None:
    rt = open_runtime("torch", spread_ckpt)
    tasks = load_tasks(tasks_dir).tasks
    plan = plan_tasks(tasks, SolveOptions(augment=5, halt=halt, batch=6), rt.runner.spec.canvas, rt.puzzles)
    batches = make_batches(plan, rt.puzzles).batches
    seen: list[int] = []
    with rt.runner:
        static = run_batches_scheduled(rt.runner, batches, halt, schedule="static", warmup=False)
        cont = run_batches_scheduled(rt.runner, batches, halt, schedule="continuous", warmup=False,
                                     keep_logits=True, on_batch=seen.append)
    assert cont.batch_sizes == static.batch_sizes and sum(seen) == len(plan.jobs)
    for name in ("predictions", "steps"):
        for a, b in zip(getattr(cont, name), getattr(static, name), strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(cont.flat("q_halt"), static.flat("q_halt"), atol=1e-5)
    assert cont.logits is not None and len(cont.logits) == len(batches)
    assert decide(plan, cont).submission() == decide(plan, static).submission()
    per_puzzle = np.asarray(cont.batch_seconds) / np.asarray(cont.batch_sizes)  # the run's wall time, shared out
    assert per_puzzle.min() > 0 and np.allclose(per_puzzle, per_puzzle[0])
    if halt == "adaptive":
        assert len(set(static.flat("steps").tolist())) > 1


def test_unknown_schedule(tiny_ckpt: Path) -> None:
    rt = open_runtime("torch", tiny_ckpt)
    with rt.runner, pytest.raises(HrmEdgeError, match="unknown schedule 'dynamic'"):
        run_batches_scheduled(rt.runner, [], "max", schedule="dynamic")
