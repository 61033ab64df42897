"""results.jsonl (run_arm.sh) -> results.md: per arm and budget, test inputs solved and pass@2, mean and spread
over seeds; plus results.png (pass@2 against budget per arm) when matplotlib is installed.

    python benchmarks/adapt/collect.py OUT_DIR [TRIVIAL_JSON_LINE]
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def run_name(r: dict) -> str:
    """The file stem run_arm.sh gives an arm's log, checkpoint and scores (-eN only for a non-default --evals)."""
    return f"{r['arm']}-{r['budget_s']}-s{r['seed']}" + (f"-e{r['evals']}" if r.get("evals") not in (None, 8) else "")


def optimizer_steps(out: Path, r: dict) -> str:
    """The steps the arm made in its budget (and, for adapt, the step of the state kept), from its log."""
    log = out / f"{run_name(r)}.log"
    if not log.exists():
        return "?"
    text = log.read_text(errors="replace")
    m = re.search(r"adapted \d+ tasks in (\d+) steps.*state of step (\d+) kept", text)
    if m:
        return m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} (kept {m.group(2)})"
    m = re.search(r"stopped by signal at step (\d+)", text)  # the trainer's log (scratch), cut by the budget
    if m:
        return m.group(1)
    steps = re.findall(r"^step (\d+)/", text, flags=re.M)  # or finished its schedule within it
    return steps[-1] if steps else "?"


def cell_accuracy(out: Path, r: dict) -> float | None:
    """solve's non-PAD token accuracy on the test outputs (every augmented prediction, in its own frame):
    a graded signal where exact answers are all 0."""
    f = out / f"{run_name(r)}_scores.json"
    return json.loads(f.read_text()).get("token_accuracy_non_pad") if f.exists() else None


def main() -> None:
    out = Path(sys.argv[1])
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["arm"], r["budget_s"])].append(r)
    total = rows[0]["test_inputs"] if rows else 0
    lines = [f"| arm | budget | seeds | test inputs solved (of {total}) | pass@2 | non-PAD token accuracy "
             "| optimizer steps | load (1-min avg) |",
             "|---|---|---|---|---|---|---|---|"]
    for (arm, budget), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        s = np.array([r["solved"] for r in rs], float)
        p = np.array([r["pass@2"] for r in rs], float)
        spread = lambda a: f" ± {a.std():.2f}" if len(a) > 1 else ""  # noqa: E731
        c = np.array([x for x in (cell_accuracy(out, r) for r in rs) if x is not None], float)
        cells = f"{100 * c.mean():.1f}%" + (f" ± {100 * c.std():.1f}" if len(c) > 1 else "") if len(c) else "?"
        lines.append(f"| {arm} | {budget // 60} min | {len(rs)} ({', '.join(str(r['seed']) for r in rs)}) | "
                     f"{s.mean():.2f}{spread(s)} | {p.mean():.3f}{spread(p)} | {cells} | "
                     f"{', '.join(optimizer_steps(out, r) for r in rs)} | "
                     f"{', '.join(str(r['load_before']) for r in rs)} |")
    if len(sys.argv) > 2:
        t = json.loads(sys.argv[2])
        lines.append(f"| trivial (two most frequent demonstration outputs) | - | - | {t['solved']} | "
                     f"{t['pass@2']:.3f} | - | - | - |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for arm in sorted({a for a, _ in groups}):
        pts = sorted((b, np.mean([r["pass@2"] for r in groups[(arm, b)]])) for a, b in groups if a == arm)
        ax.plot([b / 60 for b, _ in pts], [v for _, v in pts], marker="o", label=arm)
    ax.set_xlabel("budget (CPU minutes, all unseen tasks together)")
    ax.set_ylabel("pass@2 on unseen test inputs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=120)


if __name__ == "__main__":
    main()
