"""The demo recipe's seeds side by side (issue 21, item 10): each run's best.pt on the demo's held-out test inputs.

    python benchmarks/demo_model/seeds.py RUN0 RUN1 RUN2 --data DATA

Each RUN is a `benchmarks/demo_model/train.sh` run folder (SEED=k RUN=...), DATA its dataset (identifiers.json).
A finished run (latest.json `done`) is solved exactly as `hrm-edge demo` solves (the recorded task list, 8
augmentations, vote, 2 attempts, halt max, batch 32, PyTorch, one thread): its best.pt, chosen on val/, is read
on the test inputs once. An unfinished run is a `pending` row with its step. Prints a markdown table, the mean
and sample standard deviation over the finished runs, and the baseline (the floor every row is read against).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    from hrm_edge.demo.asset import load_asset, select_tasks
    from hrm_edge.demo.run import AUGMENT, BATCH, HALT, inputs_solved
    from hrm_edge.solve.compare import compare_runtimes
    from hrm_edge.solve.runners import open_runtime
    from hrm_edge.solve.solver import SolveOptions

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="train.sh run folders, one per seed")
    ap.add_argument("--data", type=Path, required=True, help="the runs' dataset folder (identifiers.json)")
    args = ap.parse_args(argv)
    tasks = select_tasks(load_asset())
    opts = SolveOptions(augment=AUGMENT, attempts=2, halt=HALT, batch=BATCH, seed=0)
    lines = ["| seed | run | best step (val) | val exact | test inputs solved | pass@2 |", "|---|---|---|---|---|---|"]
    done: list[tuple[int, float]] = []
    floor = None
    for run in args.runs:
        cfg = (run / "config.toml").read_text() if (run / "config.toml").is_file() else ""
        seed = next((ln.split("=")[1].strip() for ln in cfg.splitlines() if ln.startswith("seed =")), "?")
        latest, best = _read(run / "latest.json"), _read(run / "best.json")
        if not latest.get("done"):
            last = sorted((run / "checkpoints").glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
            step = latest.get("step") or (int(last[-1].stem.split("_")[1]) if last else 0)
            lines.append(f"| {seed} | `{run}` | pending (step {step}) | | | |")
            continue
        ref = open_runtime("torch", run / "best.pt", device="cpu", identifiers=args.data / "identifiers.json",
                           threads=1)
        rep = compare_runtimes(tasks, ref, [], opts, warmup=False)
        solved, pass2 = inputs_solved(rep.answers), rep.rows[0].pass2 or 0.0
        floor = floor or (inputs_solved(rep.baseline_answers), rep.baseline.pass2 or 0.0, rep.test_inputs)
        done.append((solved, pass2))
        exact = best.get('metrics', {}).get('exact_accuracy', 0)
        lines.append(f"| {seed} | `{run}` | {best.get('step')} | {exact:.4f} "
                     f"| {solved} of {rep.test_inputs} | {100 * pass2:.1f}% |")
    print("\n".join(lines))
    if done:
        def sd(xs):
            return (statistics.stdev(xs) if len(xs) > 1 else float("nan"))
        s, p = [d[0] for d in done], [100 * d[1] for d in done]
        print(f"\nover {len(done)} finished seed(s): test inputs solved mean {statistics.mean(s):.1f}, sd {sd(s):.1f} "
              f"(min {min(s)}, max {max(s)}); pass@2 mean {statistics.mean(p):.1f}%, sd {sd(p):.1f} points")
    if floor:
        print(f"baseline (two most frequent demonstration outputs): {floor[0]} of {floor[2]} test inputs, pass@2 "
              f"{100 * floor[1]:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
