"""The examples an adaptation trains on: the tasks' demonstration pairs, augmented as `build-data` does, in memory.

Only `task.train` is ever read: each task is re-made with its demonstration pairs and no test pair before
it reaches the builder's planner (`build_plan.plan_task`) and renderer (`build_render.render_chunks`), so
a test output cannot enter an example (tests/test_adapt.py plants one and proves it). A task with at
least `HOLDOUT_MIN_PAIRS` demonstrations keeps its last one back (leave-one-out): the adaptation is
scored on it as it runs and the best-scoring state is the one kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from hrm_edge.data.arc import ArcPair, ArcTask
from hrm_edge.data.build_plan import plan_task, task_key
from hrm_edge.data.build_render import render_chunks

HOLDOUT_MIN_PAIRS = 3  # with 2 demonstrations, holding one back would leave a single example to learn from


@dataclass
class DemoSet:
    """Every training example of the adaptation (token rows, uint8) and the puzzle names they use.

    `ids[i]` indexes `names` (the adaptation's own identifiers, in build-data's naming: the task id, then
    `{task}_t{dihedral}_{colours}` per augmented copy); the caller maps them onto table rows.
    """

    inputs: np.ndarray  # (n, canvas*canvas) uint8
    labels: np.ndarray  # (n, canvas*canvas) uint8
    ids: np.ndarray  # (n,) int64 into names
    names: list[str]
    held_out: list[ArcTask] = field(default_factory=list)  # one task per held-out pair: train = the rest
    tasks: list[str] = field(default_factory=list)

    @property
    def num_examples(self) -> int:
        return int(len(self.inputs))


def demonstrations_only(task: ArcTask, hold_out: bool) -> tuple[ArcTask, ArcTask | None]:
    """The task as adaptation may see it (demonstrations, no test pair) and, when holding out, the
    scoring task: the kept-back demonstration as its one test pair."""
    pairs = [ArcPair(p.input, p.output) for p in task.train if p.output is not None]
    if hold_out and len(pairs) >= HOLDOUT_MIN_PAIRS:
        train, last = pairs[:-1], pairs[-1]
        return ArcTask(task.id, train, [], source=task.source), ArcTask(task.id, train, [last], source=task.source)
    return ArcTask(task.id, pairs, [], source=task.source), None


def build_demos(tasks: list[ArcTask], augment: int, canvas: int, seed: int, hold_out: bool = True) -> DemoSet:
    """Plan and render `augment` distinct copies of every task's demonstrations (translation on, as
    build-data's train split), identity copy first; the same names build-data would give them."""
    ins, labs, ids, names, held = [], [], [], [], []
    for index, task in enumerate(tasks):
        seen, scored = demonstrations_only(task, hold_out)
        if scored is not None:
            held.append(scored)
        if not seen.train:
            continue
        plan = plan_task(index, seen, augment, seed, canvas)
        first = len(names)
        names += json.loads(f"[{plan.names_json}]")
        rng = np.random.default_rng([seed, task_key(task.id), 1])
        copy = 0
        for inp, lab in render_chunks(seen.train, plan.dihedral, plan.colors, canvas, True, rng):
            b, n_ex = inp.shape[:2]
            ins.append(inp.reshape(b * n_ex, -1))
            labs.append(lab.reshape(b * n_ex, -1))
            ids.append(np.repeat(np.arange(first + copy, first + copy + b, dtype=np.int64), n_ex))
            copy += b
    if not ins:
        c2 = canvas * canvas
        return DemoSet(np.zeros((0, c2), np.uint8), np.zeros((0, c2), np.uint8), np.zeros(0, np.int64), [],
                       held, [t.id for t in tasks])
    return DemoSet(np.concatenate(ins), np.concatenate(labs), np.concatenate(ids), names, held, [t.id for t in tasks])
