"""`compare`: the same tasks, augmentations and batches through every runtime, one table vs PyTorch.

The plan (jobs and batch composition) is made once, from the reference checkpoint's puzzle
table, and replayed unchanged on every runtime, so halting rules that depend on batch company
(the lite family's `batch-mean`) see the same company everywhere. Each runtime uses its own copy
of the puzzle-embedding table (e.g. the bundle's fp16 rows): that difference is part of what is
measured. A runtime that cannot run here is a row with its reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.bench.timing import latency_stats
from hrm_edge.data.arc import ArcTask
from hrm_edge.errors import HrmEdgeError, MissingDependencyError
from hrm_edge.runtime.batches import RunRecord, run_batches
from hrm_edge.solve.runners import Runtime, probe_runtime
from hrm_edge.solve.solver import Decision, Plan, SolveOptions, decide, make_batches, plan_tasks, summarize_scores
from hrm_edge.solve.vote import grid_key


@dataclass
class RuntimeRow:
    label: str
    kind: str
    artifact: str
    status: str  # ok | unavailable | error
    reason: str = ""
    size_bytes: int = 0
    device: str = ""
    pass1: float | None = None
    pass2: float | None = None
    token_acc: float | None = None  # non-PAD token accuracy against the known solutions
    grid_match_pct: float | None = None  # puzzles whose decoded grid equals PyTorch's
    steps_match_pct: float | None = None  # puzzles halting after the same number of segments
    answer_match_pct: float | None = None  # test inputs whose attempts equal PyTorch's
    max_abs_dlogit: float | None = None
    mean_abs_dlogit: float | None = None
    latency: dict[str, float] = field(default_factory=dict)
    blank_identifiers: int = 0
    undecodable: int = 0
    puzzles: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class CompareReport:
    rows: list[RuntimeRow]
    tasks: int
    test_inputs: int
    puzzles: int
    options: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    #: the reference runtime's answer per test input (attempts, solution, right/wrong), for rendering; not in JSON
    answers: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "test_inputs": self.test_inputs, "puzzles": self.puzzles,
                "options": self.options, "notes": self.notes, "machine": self.machine,
                "rows": [asdict(r) for r in self.rows]}


def logit_deltas(ref: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> dict[str, float]:
    """max and mean |other - ref| over every logit (batches must line up)."""
    mx, total, count = 0.0, 0.0, 0
    for a, b in zip(ref, other, strict=True):
        if a.shape != b.shape:
            raise ValueError(f"logit shapes differ: {a.shape} vs {b.shape}")
        d = np.abs(b.astype(np.float64) - a.astype(np.float64))
        mx = max(mx, float(d.max()) if d.size else 0.0)
        total += float(d.sum())
        count += d.size
    return {"max_abs": mx, "mean_abs": total / count if count else 0.0}


def percent(num: int | float, den: int | float) -> float | None:
    return None if not den else 100.0 * float(num) / float(den)


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


def _check_compatible(ref: Runtime, rt: Runtime) -> str | None:
    a, b = ref.runner.spec, rt.runner.spec
    for key in ("family", "seq_len", "vocab_size", "puzzle_emb_ndim", "max_steps"):
        if getattr(a, key) != getattr(b, key):
            return f"not the same model as the checkpoint: {key} {getattr(b, key)} vs {getattr(a, key)}"
    return None


def run_plan(rt: Runtime, plan: Plan, halt: str, on_batch: Callable[[int], None] | None, warmup: bool
             ) -> tuple[RunRecord, Decision, int]:
    """One runtime through a fixed plan: its run record, the voted decision, and how many puzzles used the
    blank identifier."""
    bs = make_batches(plan, rt.puzzles)
    with rt.runner:
        rec = run_batches(rt.runner, bs.batches, halt, keep_logits=True, warmup=warmup, on_batch=on_batch)
    return rec, decide(plan, rec), bs.n_blank


def _answers_equal(a: Decision, b: Decision) -> int:
    return sum(all(grid_key(x) == grid_key(y) for x, y in zip(p.attempts, q.attempts, strict=True))
               for p, q in zip(a.answers, b.answers, strict=True))


def compare_runtimes(tasks: list[ArcTask], reference: Runtime, others: list[tuple[str, Path, dict[str, Any]]],
                     options: SolveOptions, *, warmup: bool = True,
                     progress: Callable[[str, int], Callable[[int], None]] | None = None) -> CompareReport:
    """Run `tasks` through the reference (torch) and every other runtime; one row each.

    `others` is a list of (kind, artifact, open kwargs). `progress(label, total)` may return a
    per-batch callback.
    """
    plan = plan_tasks(tasks, options, reference.runner.spec.canvas, reference.puzzles)
    notes: list[str] = [f"{e}" for e in plan.errors]
    n = len(plan.jobs)

    def cb(label: str) -> Callable[[int], None] | None:
        return progress(label, n) if progress else None

    ref_rec, ref_dec, ref_blank = run_plan(reference, plan, options.halt, cb(reference.label), warmup)
    ref_grids = ref_dec.per_job_grid
    order = [i for b in plan.batches for i in b]
    ref_steps = ref_rec.flat("steps")

    def row_from(rt: Runtime, rec: RunRecord, dec: Decision, blank: int, is_ref: bool) -> RuntimeRow:
        s = summarize_scores(dec.scores())
        row = RuntimeRow(rt.label, rt.kind, str(rt.artifact), "ok", size_bytes=rt.size_bytes, device=rt.device,
                         pass1=s["pass@1"], pass2=s["pass@2"], token_acc=dec.token_accuracy,
                         latency=latency_stats(rec.batch_seconds, rec.batch_sizes),
                         blank_identifiers=blank, undecodable=dec.undecodable, puzzles=rec.n)
        if is_ref:
            row.grid_match_pct = row.steps_match_pct = row.answer_match_pct = 100.0
            row.max_abs_dlogit = row.mean_abs_dlogit = 0.0
            return row
        same = sum((g is None and r is None) or (g is not None and r is not None and grid_key(g) == grid_key(r))
                   for g, r in ((dec.per_job_grid[j], ref_grids[j]) for j in order))
        row.grid_match_pct = percent(same, n)
        row.steps_match_pct = percent(int((rec.flat("steps") == ref_steps).sum()), n)
        row.answer_match_pct = percent(_answers_equal(dec, ref_dec), len(ref_dec.answers))
        d = logit_deltas(ref_rec.logits or [], rec.logits or [])
        row.max_abs_dlogit, row.mean_abs_dlogit = d["max_abs"], d["mean_abs"]
        return row

    rows = [row_from(reference, ref_rec, ref_dec, ref_blank, True)]
    if ref_blank:
        notes.append(f"{ref_blank} of {n} puzzles use the blank puzzle identifier (task+augmentation not in the "
                     f"model's table{'' if reference.puzzles.names else '; no identifier index found'})")
    for kind, artifact, kw in others:
        rt, reason, status = probe_runtime(kind, artifact, **kw)
        if rt is None:
            rows.append(RuntimeRow(f"{kind} {Path(artifact).name}", kind, str(artifact), status, reason or ""))
            continue
        bad = _check_compatible(reference, rt)
        if bad:
            rows.append(RuntimeRow(rt.label, kind, str(artifact), "error", bad, size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        try:
            rec, dec, blank = run_plan(rt, plan, options.halt, cb(rt.label), warmup)
        except HrmEdgeError as exc:  # MissingDependencyError at activation: cannot run here
            status = "unavailable" if isinstance(exc, MissingDependencyError) else "error"
            rows.append(RuntimeRow(rt.label, kind, str(artifact), status, str(exc), size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        except Exception as exc:  # a backend failing at run time is a row, not a crash of the whole table
            msg = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
            rows.append(RuntimeRow(rt.label, kind, str(artifact), "error", msg, size_bytes=rt.size_bytes,
                                   device=rt.device))
            continue
        rows.append(row_from(rt, rec, dec, blank, False))
    opts = asdict(options)
    return CompareReport(rows, len(plan.tasks), plan.n_test_inputs, n, opts, notes, machine_info(), ref_dec.answers)


# --------------------------------------------------------------------------------------------------
# presentation
# --------------------------------------------------------------------------------------------------
COLUMNS = ("runtime", "status", "size", "pass@1", "pass@2", "tokens", "grids = torch", "steps = torch", "max |Δlogit|",
           "mean |Δlogit|", "p50 ms", "p90 ms", "p99 ms", "puzzles/s")


def _size(n: int) -> str:
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
    return [r.label, status, _size(r.size_bytes),
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
    for r in rep.rows:
        t.add_row(*row_cells(r, with_reason=False), style=None if r.ok else "yellow")
    return t


def reasons(rep: CompareReport) -> list[str]:
    """One line per runtime that did not run, for under the table."""
    return [f"{r.label}: {r.status}: {r.reason}" for r in rep.rows if not r.ok]


def markdown(rep: CompareReport) -> str:
    lines = ["# hrm-edge compare", "", title_of(rep), "",
             "| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rep.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |")
    lines += ["", "Latency is per puzzle (one augmented test input), batch wall time / batch size, over every "
              "segment of the ACT loop; puzzles/s is puzzles / total time. pass@k is exact-match task accuracy "
              "(ARC Prize scoring); `tokens` is non-PAD token accuracy against the solutions (PAD never counts). "
              "`grids = torch`: puzzles whose decoded grid equals PyTorch's; `steps = torch`: "
              "puzzles halting after the same number of segments; deltas are over every logit."]
    for r in rep.rows:
        if r.ok and r.answer_match_pct is not None and r.kind != "torch":
            lines.append(f"- {r.label}: submissions equal PyTorch's on {r.answer_match_pct:.1f}% of test inputs.")
    for note in rep.notes:
        lines.append(f"- note: {note}")
    m = rep.machine
    lines += ["", f"Machine: {m.get('platform', '?')}, {m.get('cpus', '?')} CPUs, torch {m.get('torch', '?')}"
              + (f", onnxruntime {m['onnxruntime']}" if "onnxruntime" in m else "")
              + (f", GPU {m['gpu']}" if "gpu" in m else ""), ""]
    return "\n".join(lines)


def plot(rep: CompareReport, path: str | Path) -> Path:
    """Accuracy against latency, one point per runtime that ran (two panels: pass@2 and agreement)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rep.rows if r.ok and r.latency.get("p50_ms") is not None]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    markers = "osD^vP*X"
    for ax, key, label in ((axes[0], "pass2", "pass@2 (%)"), (axes[1], "grid_match_pct", "grids = PyTorch (%)")):
        for i, r in enumerate(ok):
            v = getattr(r, key)
            if v is None:
                continue
            y = 100 * v if key == "pass2" else v
            ax.scatter([r.latency["p50_ms"]], [y], s=50, color=f"C{i}", marker=markers[i % len(markers)],
                       label=r.label, alpha=0.8)
        ax.set_xlabel("latency per puzzle, p50 (ms)")
        ax.set_ylabel(label)
        ax.set_ylim(-5, 105)
        ax.set_xlim(left=0)
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False)
    skipped = [r.label for r in rep.rows if not r.ok]
    fig.suptitle(title_of(rep) + (f"\nnot run: {', '.join(skipped)}" if skipped else ""), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
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
