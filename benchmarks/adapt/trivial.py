"""The trivial baseline: each task's two most frequent demonstration outputs, as attempt 1 and 2.

    python benchmarks/adapt/trivial.py TASKS_DIR

Prints test inputs solved (either attempt equal to the known output) and pass@2 (mean over tasks of the
share of its test inputs solved), the numbers `hrm-edge solve` reports for a model.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from hrm_edge.data.arc import load_tasks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tasks")
    a = ap.parse_args()
    solved, inputs, per_task = 0, 0, []
    for t in load_tasks(a.tasks).tasks:
        counts = Counter(json.dumps(p.output.tolist()) for p in t.train if p.output is not None)
        attempts = [np.array(json.loads(k)) for k, _ in counts.most_common(2)]
        hits = [any(g.shape == p.output.shape and (g == p.output).all() for g in attempts) for p in t.test]
        solved += sum(hits)
        inputs += len(hits)
        per_task.append(float(np.mean(hits)))
    print(json.dumps({"arm": "trivial", "solved": solved, "test_inputs": inputs, "pass@2": float(np.mean(per_task))}))


if __name__ == "__main__":
    main()
