"""The floor every accuracy is read against: a baseline that never looks at a test input.

For each task its demonstration outputs are voted like augmented predictions (identical grids pool their
votes; ties keep the order of first appearance), and the two most frequent are the two attempts for every
test input of the task. On tasks whose answer is "the usual output" this already scores; a model's pass@2
means something only by how far it rises above this row. `compare` and `hrm-edge demo` print it under the
runtimes, scored by the same `score_answers` / `summarize_scores` as they are.
"""

from __future__ import annotations

import numpy as np

from hrm_edge.data.arc import ArcTask
from hrm_edge.solve.answers import TestAnswer
from hrm_edge.solve.vote import Candidate, attempts_from, vote

LABEL = "baseline: 2 most frequent demo outputs"
KIND = "baseline"


def frequent_output_answers(tasks: list[ArcTask], attempts: int = 2) -> list[TestAnswer]:
    """Every test input of every task answered with its task's `attempts` most frequent demonstration outputs."""
    answers: list[TestAnswer] = []
    for task in tasks:
        cands = [Candidate(np.asarray(p.output, dtype=np.uint8), 0.0, f"demo {i}")
                 for i, p in enumerate(task.train) if p.output is not None]
        ranked = vote(cands)  # equal q_halt: most votes, then first seen
        for ti, pair in enumerate(task.test):
            atts = attempts_from(ranked, attempts)
            sol = pair.output
            correct = None if sol is None else [bool(a.shape == sol.shape and np.array_equal(a, sol)) for a in atts]
            answers.append(TestAnswer(task.id, ti, atts, ranked, len(cands), 0, sol, correct))
    return answers
