"""`hrm-edge demo`: the model shipped in the package solves real held-out ARC test inputs on three runtimes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from hrm_edge.commands.consoles import say, stdout_console


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", metavar="DIR", help="Folder for everything the demo "
                             "writes (checkpoint copy, tasks.json, bundles, compare report, PNGs). An existing "
                             "folder is reused only if an earlier demo wrote it."),
    tasks: Optional[int] = typer.Option(None, "--tasks", min=1, metavar="N", help="Only the first N selected "
                                        "tasks, in the recorded order, for a quick run. Default: all of them."),
    threads: int = typer.Option(1, "--threads", min=1, metavar="T", help="CPU threads for torch and ONNX "
                                "Runtime. The demo model's matrices are small: on a busy 2-core CPU one thread ran "
                                "PyTorch 8x faster than two."),
) -> None:
    """Run the shipped demo model end to end: export (parity-checked), solve its held-out ARC test inputs on
    PyTorch, ONNX Runtime fp32 and int8, compare (with the no-model baseline as the floor), render, write each
    runtime's submission_<runtime>.json; then what to run on a Jetson."""
    from hrm_edge.demo.run import check_out_dir

    check_out_dir(out)
    t0 = time.perf_counter()
    from hrm_edge.bench.compare import reasons, rich_table
    from hrm_edge.demo.asset import load_asset, select_tasks
    from hrm_edge.demo.run import INT8_PRECISION, inputs_solved, next_steps, run_demo

    asset = load_asset()
    picked = select_tasks(asset, tasks)
    sel = asset.selection
    con = stdout_console()
    n_test = sum(len(t.test) for t in picked)
    cfg = asset.manifest["checkpoint"]
    con.print(f"demo model: step {cfg.get('step')} of {cfg.get('total_steps')} "
              f"({asset.checkpoint.stat().st_size / 1e6:.1f} MB, weights only); tasks: {sel['rule']}",
              highlight=False)
    con.print(f"solving {len(picked)} of {len(asset.task_ids)} tasks, {n_test} held-out test inputs "
              f"(never trained on), on PyTorch, ONNX Runtime fp32 and ONNX Runtime {INT8_PRECISION}",
              highlight=False)
    res = run_demo(asset, picked, out, threads=threads, say=say)
    con.print(rich_table(res.report))
    for line in reasons(res.report):
        con.print(line, highlight=False, markup=False, style="yellow")
    for n in res.report.notes:
        say(n)
    tasks_part = f"{len(res.solved)} of {len(picked)} tasks" + (f": {', '.join(res.solved)}" if res.solved else "")
    con.print(f"solved (both attempts counted, PyTorch): {inputs_solved(res.report.answers)} of "
              f"{res.report.test_inputs} held-out test inputs; {tasks_part}", highlight=False, soft_wrap=True)
    if res.report.baseline is not None:
        con.print(f"baseline (no model: each task's two most frequent demonstration outputs): "
                  f"{inputs_solved(res.report.baseline_answers)} of {res.report.test_inputs} held-out test inputs",
                  highlight=False, soft_wrap=True)
    con.print("submissions (ARC Prize format): " + ", ".join(str(p) for p in res.submissions.values()),
              highlight=False, soft_wrap=True)
    con.print(f"PNGs: {res.render['solved']}/ ({len(res.solved)} solved), {res.render['failed']}/ "
              f"({len(res.failed)} not solved); report: {', '.join(str(p) for p in res.report_files.values())}",
              highlight=False)
    con.print(f"done in {time.perf_counter() - t0:.0f} s ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in res.stage_seconds.items()) + ")", highlight=False)
    con.print(f"\nnext, on a Jetson (copy {out}/ there; install with jetson/setup.sh: the Jetson AI Lab torch and "
              "onnxruntime-gpu, JetPack's tensorrt, hrm-edge[jetson]):", highlight=False, markup=False)
    for cmd in next_steps(res):
        con.print(f"  {cmd}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


__all__ = ["register", "demo"]
