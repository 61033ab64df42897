"""Write the unseen tasks of the protocol: ARC-AGI-1 *evaluation* tasks whose every grid fits the canvas.

    python benchmarks/adapt/select_tasks.py OUT_DIR [--canvas 8]

The base model trains on ARC-AGI-1 *training* tasks only (`build-data arc-agi-1/training --skip-larger`), so
none of these was seen by it. Prints the number of tasks and test inputs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hrm_edge.data.arc import load_tasks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--canvas", type=int, default=8)
    a = ap.parse_args()
    tasks = [t for t in load_tasks("arc-agi-1/evaluation").tasks if t.fits(a.canvas)]
    a.out.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        (a.out / f"{t.id}.json").write_text(json.dumps(t.to_json()))
    print(json.dumps({"tasks": len(tasks), "test_inputs": sum(len(t.test) for t in tasks), "canvas": a.canvas}))


if __name__ == "__main__":
    main()
