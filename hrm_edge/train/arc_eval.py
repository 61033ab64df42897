"""The real ARC score during training: pass@1 / pass@2 through the solver `hrm-edge solve` uses.

The evaluation tasks are the dataset's own (`build.json` names its sources; tasks from an
"evaluation" source put their test pairs in the test split, never trained on). Each test input is
augmented, run through the shared ACT driver (TorchRunner on the model being trained, `--halt max`
as the reference evaluates), inverted and voted exactly as `hrm-edge solve` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hrm_edge.data.arc import ArcTask, load_sources
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import read_json


def eval_tasks(data_root: str | Path, n: int, canvas: int) -> list[ArcTask]:
    """The first n evaluation tasks (by id) with known test outputs; an error names what is missing."""
    root = Path(data_root)
    build = root / "build.json"
    if not build.is_file():
        raise HrmEdgeError("--eval-tasks needs build.json (a dataset written by `hrm-edge build-data`) to find "
                           "the tasks", path=root)
    sources = read_json(build, "build record").get("sources") or []
    tasks = [t for t in load_sources(sources, canvas).tasks
             if t.split == "evaluation" and t.test and all(p.output is not None for p in t.test)]
    if not tasks:
        raise HrmEdgeError("--eval-tasks: the dataset's sources hold no evaluation tasks with known test outputs",
                           path=build)
    return sorted(tasks, key=lambda t: t.id)[:n]


def identifier_rows(data_root: str | Path) -> dict[str, int]:
    path = Path(data_root) / "identifiers.json"
    if not path.is_file():
        return {}
    return {name: i for i, name in enumerate(json.loads(path.read_text(encoding="utf-8")))}


def arc_score(model: Any, tasks: list[ArcTask], names: dict[str, int], device: str, augment: int = 8,
              batch: int = 16, seed: int = 0) -> dict[str, Any]:
    """pass@1 / pass@2 (mean over tasks) of `model` on `tasks`; the model is left in the mode it was in."""
    from hrm_edge.runtime.batches import run_batches
    from hrm_edge.runtime.torch import TorchRunner
    from hrm_edge.solve.runners import PuzzleTable
    from hrm_edge.solve.solver import SolveOptions, decide, make_batches, plan_tasks, summarize_scores

    was = model.training
    runner = TorchRunner.from_model(model, device=device)
    cfg = model.config
    ndim = int(cfg.puzzle_emb_ndim)
    table = PuzzleTable(ndim=ndim, num_rows=int(cfg.num_puzzle_identifiers), names=names if ndim else {},
                        rows=runner.puzzle_vectors if ndim > 0 else None, source="identifiers.json")
    plan = plan_tasks(tasks, SolveOptions(augment=augment, attempts=2, halt="max", batch=batch, seed=seed),
                      cfg.canvas, table)
    bs = make_batches(plan, table)
    try:
        with runner:
            rec = run_batches(runner, bs.batches, "max", warmup=False)
    finally:
        model.train(was)
    dec = decide(plan, rec)
    s = summarize_scores(dec.scores())
    return {"tasks": s["tasks_with_solutions"], "pass@1": s["pass@1"], "pass@2": s["pass@2"],
            "solved@2": s.get("solved@2", 0), "answer_token_accuracy": dec.token_accuracy}
