"""Rewrite README's quick-start section from a real `hrm-edge demo` run (after re-packaging the model).

Record the run in an empty folder RUN, then pass it here:

    mkdir RUN && cd RUN
    uptime | sed 's/.*load average: //' | cut -d, -f1 > load.txt
    PYTHONUNBUFFERED=1 /usr/bin/time -o time.txt -f "wall %e s, user CPU %U s, system CPU %S s" \
        hrm-edge demo > run.txt 2>&1
    python REPO/benchmarks/demo_model/readme_quickstart.py RUN

The section quotes run.txt verbatim (and RUN/seeds.txt, a line on the recipe's seeds, when present), the time and load lines, the asset's step, and copies the first
solved task's PNG (PyTorch's answers) to docs/demo_solved.png; with none solved it says so.
"""
import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
run = Path(sys.argv[1])
readme = REPO / "README.md"
text = (run / "run.txt").read_text().rstrip()
tline = (run / "time.txt").read_text().strip().splitlines()[-1]
load = (run / "load.txt").read_text().strip()
rec = json.loads((run / "demo_out" / "demo.json").read_text())
cmp_ = json.loads((run / "demo_out" / "compare.json").read_text())
asset = json.loads((REPO / "hrm_edge/assets/demo/demo.json").read_text())
step, total = asset["checkpoint"]["step"], asset["checkpoint"]["total_steps"]
m = cmp_["machine"]
sys.path.insert(0, str(REPO))
from hrm_edge.model.checkpoint import load_checkpoint  # noqa: E402

_model = load_checkpoint(REPO / "hrm_edge/assets/demo/model.pt").model
table = _model.puzzle_emb.weights.numel() if _model.config.puzzle_emb_ndim else 0
dense = sum(p.numel() for p in _model.parameters()) - table
mb = (REPO / "hrm_edge/assets/demo/model.pt").stat().st_size / 1e6
rows = cmp_["rows"]
solved = rec["solved"]
n_tasks, n_test = len(asset["selection"]["tasks"]), asset["selection"]["test_inputs"]
g_fp32, g_int8 = rows[1]["grid_match_pct"], rows[2]["grid_match_pct"]
chosen_on = asset["checkpoint"].get("best_metric_name") or ""
chosen = ("by exact accuracy on the validation split: each task's last demonstration pair, held out of training; "
          "the test inputs were read once, by this run" if chosen_on.startswith("val/") else
          "by exact accuracy on a fixed subset of the augmented held-out test inputs")
base = cmp_.get("baseline")
png = ""
if solved:
    png = "docs/demo_solved.png"
    (REPO / "docs").mkdir(exist_ok=True)
    shutil.copyfile(run / "demo_out" / "render" / "solved" / f"{solved[0]}.png", REPO / png)
sec = f"""## Quick start (two commands on a fresh machine)

```bash
make demo   # creates .venv (torch==2.13.0 CPU first, then hrm-edge[ort,dev]) and runs `hrm-edge demo`
make test   # same setup, then the test suite (pytest); CI runs exactly this (.ci/run)
```

`hrm-edge demo` runs the small HRM shipped inside the package (`hrm_edge/assets/demo/`: ACT v1,
hidden 128, 6x6 canvas, {dense:,} dense + {table:,} puzzle-embedding parameters, {mb:.1f} MB of weights),
trained on this 2-core CPU with `hrm-edge train` (command and config: `benchmarks/demo_model/`).
Its tasks are fixed by a rule, not picked: every ARC-AGI-1 task (training and evaluation) whose
grids all fit 6x6, {n_tasks} tasks. Their demonstration pairs, augmented, were the training data;
their {n_test} test inputs were never trained on, and are what the demo solves. It exports the model
(`step` graph, parity ladder L1-L4) in fp32 and in static int8 (Q/DQ, calibrated on the tasks'
demonstration pairs: the bundle TensorRT builds with `--int8`), solves the test inputs on PyTorch, ONNX
Runtime fp32 and ONNX Runtime int8 with the same augmentations and batches, prints the `compare`
table, renders every task to PNG (`demo_out/render/solved/`, `demo_out/render/failed/`) and ends
with the commands to run on a Jetson, using the files it wrote. `hrm-edge demo --tasks 3` is a
quick run of the first 3 tasks; `--out DIR` writes elsewhere.

The model shipped is the training run's best checkpoint ({chosen}) at step {step} of {total}; its training
curve, logs, seeds and the command that reproduces it are in `benchmarks/demo_model/` (`train.sh`, `README.md`).

```
$ hrm-edge demo
{text}
```

Measured on this project's machine (2 vCPU AMD EPYC x86_64, no GPU, Python {m['python']}, torch
{m['torch']} CPU, onnxruntime {m.get('onnxruntime', '?')}) at load average {load} when it started:
`/usr/bin/time hrm-edge demo` gave {tline}. `grids = torch` is the share of the
{cmp_['puzzles']} puzzles whose decoded grid equals PyTorch's: ONNX Runtime fp32 {g_fp32:.1f}%, ONNX Runtime
static int8 {g_int8:.1f}% (int8 changes some answers; the attention products, heads and the down / o_proj
projections stay fp32, which is what keeps most of them: `benchmarks/README.md`, "Static int8").
"""
if base:
    sec += f"""
The `{base['label']}` row is the floor, no model at all: every test input answered with its task's two most
frequent demonstration outputs solves {rec['baseline']['test_inputs_solved']} of the {n_test} test inputs (pass@2
{100 * base['pass2']:.1f}%); the model's figures mean what they add to it. Each runtime's answers are in
`demo_out/submission_<runtime>.json` (ARC Prize format), for any scorer.
"""
seeds = run / "seeds.txt"  # optional: one line on the recipe's seeds (benchmarks/demo_model/seeds.py's summary)
if seeds.is_file():
    sec += "\n" + seeds.read_text().strip() + "\n"
if png:
    sec += f"""
One of the solved tasks as the demo renders it (`demo_out/render/solved/{solved[0]}.png`): the held-out
test input, the two attempts (PyTorch), the solution.

![{solved[0]}: solved by the demo model]({png})
"""
else:
    sec += ("\nThis intermediate model solves none of the held-out test inputs exactly yet, so there is no solved "
            "task to show here;\nits renderings are all in `demo_out/render/failed/`.\n")
sec += """
`make path-demo` (scripts/random_model_path.sh) is the walk-through of the whole path with a
random-weights model instead: init, export, solve on PyTorch and ONNX Runtime with byte-identical
submissions, and a `compare` table with a TensorRT row that says why it cannot run here.
"""
s = readme.read_text()
start = s.index("## Quick start (two commands on a fresh machine)")
end = s.index("`make` installs `torch==2.13.0` before anything else")
readme.write_text(s[:start] + sec + "\n" + s[end:])
print(f"rewrote the quick-start section of {readme}" + (f" and {png}" if png else ""))
