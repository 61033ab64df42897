"""`compare` with timings: every runtime's latency beside its agreement with PyTorch, as a table, markdown,
JSON and a PNG. Solving the same plan on every runtime is solve/compare.py's; this adds the latency
percentiles (bench/timing.py) and the machine they were measured on, and presents the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.bench.timing import run_latency
from hrm_edge.data.arc import ArcTask
from hrm_edge.solve.compare import CompareReport, RuntimeRow, compare_runtimes
from hrm_edge.solve.run import load_task_list
from hrm_edge.solve.runners import Runtime, open_runtime
from hrm_edge.solve.solver import SolveOptions


def timed_compare(tasks: list[ArcTask], reference: Runtime, others: list[tuple[str, Path, dict[str, Any]]],
                  options: SolveOptions, *, warmup: bool = True,
                  progress: Callable[[str, int], Callable[[int], None]] | None = None) -> CompareReport:
    """`solve.compare.compare_runtimes` with each row's latency percentiles and the machine recorded."""
    rep = compare_runtimes(tasks, reference, others, options, warmup=warmup, progress=progress, timings=run_latency)
    rep.machine = machine_info()
    return rep


def compare_artifacts(tasks: str, ckpt: Path, bundles: Sequence[Path], engines: Sequence[Path], options: SolveOptions,
                      *, device: str | None = None, provider: str | None = None, identifiers: Path | None = None,
                      threads: int | None = None, limit: int | None = None, warmup: bool = True,
                      say: Callable[[str], None] = lambda _: None, dtype: str | None = None,
                      progress: Callable[[str, int], Callable[[int], None]] | None = None
                      ) -> tuple[CompareReport, list[str]]:
    """`hrm-edge compare`: the checkpoint on PyTorch as the reference, every bundle (ONNX Runtime) and engine
    (TensorRT) beside it on the same plan, timed; `dtype` is the reference's compute dtype (float32, bfloat16,
    trained). Returns the report (skipped tasks first among its notes) and the problems that skipped tasks."""
    ref = open_runtime("torch", ckpt, device=device, identifiers=identifiers, threads=threads, dtype=dtype)
    task_list, errors = load_task_list(tasks, ref.runner.spec.canvas, limit, say)
    problems = [str(e) for e in errors]
    others: list[tuple[str, Path, dict[str, Any]]] = []
    others += [("onnxruntime", b, {"device": provider, "identifiers": identifiers, "threads": threads})
               for b in bundles]
    others += [("tensorrt", e, {"identifiers": identifiers}) for e in engines]
    rep = timed_compare(task_list, ref, others, options, warmup=warmup, progress=progress)
    rep.options["threads"] = threads
    rep.notes = [f"skipped: {p}" for p in problems] + rep.notes
    return rep, problems


def machine_info() -> dict[str, Any]:
    import os
    import platform

    import torch

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads()}
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["ort_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    from hrm_edge.runtime.jetson_info import is_jetson, jetson_facts

    if is_jetson():  # L4T/JetPack, board, nvpmodel mode and jetson_clocks recorded with every Jetson result
        info["jetson"] = jetson_facts()
    return info


# --------------------------------------------------------------------------------------------------
# presentation
# --------------------------------------------------------------------------------------------------
COLUMNS = ("runtime", "status", "size", "pass@1", "pass@2", "tokens", "grids = torch", "steps = torch", "max |Δlogit|",
           "mean |Δlogit|", "p50 ms", "p90 ms", "p99 ms", "puzzles/s")


def human_size(n: int) -> str:
    if not n:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}%"


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def row_cells(r: RuntimeRow, with_reason: bool = True) -> list[str]:
    status = r.status if r.ok or not with_reason else f"{r.status}: {r.reason}"
    lat = r.latency
    return [r.label, status, human_size(r.size_bytes),
            _pct(None if r.pass1 is None else 100 * r.pass1), _pct(None if r.pass2 is None else 100 * r.pass2),
            _pct(None if r.token_acc is None else 100 * r.token_acc), _pct(r.grid_match_pct),
            _pct(r.steps_match_pct), _num(r.max_abs_dlogit, ".2e"),
            _num(r.mean_abs_dlogit, ".2e"), _num(lat.get("p50_ms"), ".1f"), _num(lat.get("p90_ms"), ".1f"),
            _num(lat.get("p99_ms"), ".1f"), _num(lat.get("puzzles_per_s"), ".1f")]


def title_of(rep: CompareReport) -> str:
    o = rep.options
    return (f"{rep.tasks} tasks, {rep.test_inputs} test inputs x {o['augment']} augmentations = {rep.puzzles} "
            f"puzzles; halt {o['halt']}, batch {o['batch']}")


def rich_table(rep: CompareReport):  # type: ignore[no-untyped-def]
    from rich.table import Table

    t = Table(title=title_of(rep))
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("runtime", "status") else "right", overflow="fold")
    for r in rep.table_rows:
        t.add_row(*row_cells(r, with_reason=False), style=None if r.ok else "yellow",
                  end_section=r is rep.rows[-1] and rep.baseline is not None)
    return t


def reasons(rep: CompareReport) -> list[str]:
    """One line per runtime that did not run, for under the table."""
    return [f"{r.label}: {r.status}: {r.reason}" for r in rep.rows if not r.ok]


def markdown(rep: CompareReport) -> str:
    lines = ["# hrm-edge compare", "", title_of(rep), "",
             "| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rep.table_rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |")
    lines += ["", "Latency is per puzzle (one augmented test input), batch wall time / batch size, over every "
              "segment of the ACT loop; puzzles/s is puzzles / total time. pass@k is exact-match task accuracy "
              "(ARC Prize scoring); `tokens` is non-PAD token accuracy against the solutions (PAD never counts). "
              "`grids = torch`: puzzles whose decoded grid equals PyTorch's; `steps = torch`: "
              "puzzles halting after the same number of segments; deltas are over every logit."]
    if rep.baseline is not None:
        lines.append(f"`{rep.baseline.label}`: the floor, no model: each task's two most frequent demonstration "
                     "outputs as the two attempts for every test input; a runtime's pass@k means what it adds "
                     "to this.")
    for r in rep.table_rows:
        if r.ok and r.answer_match_pct is not None and r.kind != "torch":
            lines.append(f"- {r.label}: submissions equal PyTorch's on {r.answer_match_pct:.1f}% of test inputs.")
    for note in rep.notes:
        lines.append(f"- note: {note}")
    m = rep.machine
    lines += ["", f"Machine: {m.get('platform', '?')}, {m.get('cpus', '?')} CPUs, torch {m.get('torch', '?')}"
              + (f", onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else "")
              + (f", GPU {m['gpu']}" if "gpu" in m else ""), ""]
    return "\n".join(lines)


def agreement_axis_start(values: list[float]) -> float:
    """Where the agreement axis starts: low enough to show the lowest bar whole, high enough that 97% and 100%
    do not look alike (a 0-100 axis flattened them); the bars carry their values, so nothing is hidden."""
    lo = min(values, default=100.0)
    return max(0.0, float(np.floor(lo - max(2.0, 0.5 * (100.0 - lo)))))


def compare_figure(rep: CompareReport) -> Any:
    """Three panels of horizontal bars, one bar per runtime that ran, each labelled with its value: pass@2,
    grids = PyTorch (axis zoomed to the values, see `agreement_axis_start`) and latency per puzzle (p50)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rep.rows if r.ok]
    n = max(len(ok), 1)
    fig, axes = plt.subplots(1, 3, figsize=(13, 1.4 + 0.45 * n), sharey=True)
    labels = [r.label for r in ok]
    ypos = np.arange(len(ok))[::-1]
    panels = (("pass@2 (%)", [None if r.pass2 is None else 100 * r.pass2 for r in ok], "{:.1f}%"),
              ("grids = PyTorch (%)", [r.grid_match_pct for r in ok], "{:.1f}%"),
              ("latency per puzzle, p50 (ms)", [r.latency.get("p50_ms") for r in ok], "{:.1f} ms"))
    for ax, (title, vals, fmt) in zip(axes, panels):
        shown = [v if v is not None else 0.0 for v in vals]
        ax.barh(ypos, shown, color=[f"C{i}" for i in range(len(ok))], height=0.6)
        for y, v in zip(ypos, vals):
            ax.text(v if v is not None else 0.0, y, " " + (fmt.format(v) if v is not None else "n/a"),
                    va="center", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        if title.startswith("grids"):
            present = [v for v in vals if v is not None]
            ax.set_xlim(agreement_axis_start(present), 100.0 + 0.12 * (100.0 - agreement_axis_start(present)))
        else:
            ax.set_xlim(0, max([v for v in vals if v is not None] or [1.0]) * 1.25 or 1.0)
    axes[0].set_yticks(ypos)
    axes[0].set_yticklabels(labels, fontsize=8)
    skipped = [r.label for r in rep.rows if not r.ok]
    fig.suptitle(title_of(rep) + (f"\nnot run: {', '.join(skipped)}" if skipped else ""), fontsize=8)
    fig.tight_layout()
    return fig


def plot(rep: CompareReport, path: str | Path) -> Path:
    """compare.png: `compare_figure`, written atomically."""
    import matplotlib.pyplot as plt

    fig = compare_figure(rep)
    from hrm_edge.fileio import atomic_write_bytes

    p = Path(path)
    atomic_write_bytes(p, lambda f: fig.savefig(f, dpi=100, format="png"))  # no half-written PNG on Ctrl-C
    plt.close(fig)
    return p


REPORT_FILES = ("compare.json", "compare.md", "compare.png")


def write_report(rep: CompareReport, out_dir: str | Path) -> dict[str, Path]:
    from hrm_edge.fileio import atomic_write_bytes, atomic_write_json

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    data = rep.to_dict()
    data["time"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(d / "compare.json", json.loads(json.dumps(data, default=_jsonable)))
    md = markdown(rep)
    atomic_write_bytes(d / "compare.md", lambda f: f.write(md.encode()))
    return {"json": d / "compare.json", "md": d / "compare.md", "png": plot(rep, d / "compare.png")}


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)
