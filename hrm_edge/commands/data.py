"""`hrm-edge build-data` and `hrm-edge tasks`: build a training dataset; list and validate tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hrm_edge import interrupt
from hrm_edge.commands.consoles import say, stdout_console
from hrm_edge.errors import HrmEdgeError

_SOURCE_HELP = (
    "Named set (arc-agi-1, arc-agi-1/training, arc-agi-1/evaluation, arc-agi-2/..., kaggle-2024/..., "
    "kaggle-2025/...), an ARC task .json, a combined .json (id -> task) or a folder of them. Repeatable."
)
_MAX_LISTED = 20


def _report_problems(problems: list[str], what: str, rest: str = "") -> None:
    """A count, then one plain stderr line per problem (never wrapped: grep and CI logs see one each)."""
    if not problems:
        return
    say(f"{len(problems)} {what}:")
    for line in problems[:_MAX_LISTED]:
        say(f"  {line}")
    if len(problems) > _MAX_LISTED:
        say(f"  ... and {len(problems) - _MAX_LISTED} more{rest}")


def build_data(
    source: list[str] = typer.Option(..., "--source", "-s", help=_SOURCE_HELP),
    augment: int = typer.Option(..., "--augment", "-n", help="Augmented copies per task besides the task "
                                "itself (the reference uses 1000). Identical copies are dropped."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Output folder (written atomically)."),
    seed: int = typer.Option(42, "--seed", help="Random seed; the same seed and sources give the same dataset."),
    canvas: int = typer.Option(30, "--canvas", help="Canvas side: sequences are canvas*canvas tokens."),
    translate: bool = typer.Option(True, "--translate/--no-translate", help="Random offset of train examples "
                                   "inside the canvas (one example per puzzle stays at the top-left)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Worker processes. Default: one per CPU "
                                                                          "core this process may use."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    hold_out_tests: bool = typer.Option(False, "--hold-out-tests", help="Put every task's test pairs in test/, "
                                        "not only evaluation tasks' (the reference trains on training tasks' test "
                                        "pairs): no test input is ever trained on."),
    skip_larger: bool = typer.Option(False, "--skip-larger", help="Select only tasks whose grids all fit the "
                                     "canvas; the others are counted, not reported as problems."),
    validation: bool = typer.Option(False, "--validation", help="Hold out each task's last demonstration pair "
                                    "(tasks with at least 3) as a val/ split, never trained on: `train` chooses "
                                    "best.pt on it instead of on test/."),
    strict: bool = typer.Option(False, "--strict", help="Refuse to build when any task is invalid."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Build an augmented ARC dataset in the HRM reference layout.

    train/ and test/ .npy arrays, dataset.json and identifiers.json; tasks from evaluation sets put their test
    pairs in test/, as the reference does."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hrm_edge.data.arc import load_sources
    from hrm_edge.data.build import BuildConfig, build_dataset, check_build_config

    err = Console(stderr=True)
    cfg = BuildConfig(sources=list(source), out=out, augment=augment, seed=seed, canvas=canvas,
                      translate=translate, workers=workers, overwrite=overwrite,
                      hold_out_tests=hold_out_tests, skip_larger=skip_larger, validation=validation)
    existed = out.exists()
    check_build_config(cfg)
    interrupt.nothing_written(out, existed, "the partial build was removed")
    if strict:
        loaded = load_sources(list(source), canvas)
        if loaded.errors:
            _report_problems([str(e) for e in loaded.errors], "problems", " (hrm-edge tasks --json lists all)")
            raise HrmEdgeError(f"{len(loaded.errors)} invalid task problems and --strict given; nothing built")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=quiet, transient=False)
    bars: dict[str, int] = {}
    labels = {"plan": "planning copies (tasks)", "write": "writing examples"}

    def on_progress(phase: str, advance: int, total: int) -> None:
        # Started on the first report, i.e. after the worker processes were forked: forking while
        # rich's refresh thread runs could copy a held lock into a worker.
        if not bars:
            progress.start()
        if phase not in bars:
            bars[phase] = progress.add_task(labels.get(phase, phase), total=total)
        progress.advance(bars[phase], advance)

    try:
        report = build_dataset(cfg, progress=on_progress)
    finally:
        if bars:
            progress.stop()
    interrupt.outcome(f"the dataset {out} was written")
    _report_problems([str(e) for e in report.errors], "invalid-task problems (those tasks were skipped)",
                     " (all are listed in build.json)")
    _report_problems([str(e) for e in report.duplicates], "duplicate tasks skipped", " (see build.json)")
    if report.not_full:
        say(f"{len(report.not_full)} tasks have fewer than {augment} distinct copies (few colours or symmetric "
            "grids); listed in build.json")
    if report.larger:
        say(f"{len(report.larger)} tasks with a grid larger than {canvas}x{canvas} left out (--skip-larger); "
            "listed in build.json")
    if report.skipped_unlabelled:
        say(f"{report.skipped_unlabelled} test pairs without a known output were left out")
    t = Table(title=f"dataset {report.out}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_row("tasks", f"{report.tasks:,}")
    t.add_row("puzzle identifiers", f"{report.identifiers:,} (incl. <blank>)")
    for split, n in report.examples.items():
        t.add_row(f"{split} examples", f"{n:,} in {report.puzzles[split]:,} puzzles")
    if "test" not in report.examples:
        t.add_row("test examples", "none: no evaluation-set task among the sources (no test/ split)")
    rate = report.total_examples / report.seconds if report.seconds else 0.0
    t.add_row("time", f"{report.seconds:.2f} s ({rate:,.0f} examples/s)")
    stdout_console().print(t)


def tasks(
    source: list[str] = typer.Argument(..., metavar="SOURCE", help=_SOURCE_HELP),
    canvas: int = typer.Option(30, "--canvas", min=1, max=255, help="Largest allowed grid side."),
    ids: bool = typer.Option(False, "--ids", help="List every valid task id."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (problems included) on stdout."),
) -> None:
    """List and validate ARC tasks: counts per source, and one stderr line per problem in the invalid ones.

    Exit code: 0 when every task is valid; 2 when any task is invalid (each problem is listed) or a source
    cannot be read. A single task file that is invalid is reported as that one problem."""
    from hrm_edge.data.arc import load_tasks

    summary = []
    problems: list[str] = []
    for src in source:
        res = load_tasks(src, canvas)
        pairs = sum(len(t.train) + len(t.test) for t in res.tasks)
        unknown = sum(1 for t in res.tasks for p in t.test if p.output is None)
        largest = max((max(g.shape) for t in res.tasks for g in t.grids()), default=0)
        summary.append({"source": src, "tasks": len(res.tasks), "invalid_problems": len(res.errors), "pairs": pairs,
                        "test_outputs_unknown": unknown, "largest_side": largest,
                        **({"ids": [t.id for t in res.tasks]} if ids else {})})
        problems.extend(str(e) for e in res.errors)
    if as_json:
        print(json.dumps({"sources": summary, "problems": problems}, indent=1))
    else:
        t = Table(title="ARC tasks")
        for col in ("source", "tasks", "invalid", "pairs", "unknown test outputs", "largest side"):
            t.add_column(col, justify="left" if col == "source" else "right",
                         overflow="fold" if col == "source" else "ellipsis")
        for s in summary:
            t.add_row(s["source"], str(s["tasks"]), str(s["invalid_problems"]), str(s["pairs"]),
                      str(s["test_outputs_unknown"]), str(s["largest_side"]))
        stdout_console().print(t)
        if ids:
            for s in summary:
                print("\n".join(s["ids"]))
        _report_problems(problems, "problems", " (--json lists all)")
    if problems:
        raise HrmEdgeError(f"{len(problems)} problem(s) in invalid tasks" + ("" if as_json else " (listed above)"))


def register(app: typer.Typer) -> None:
    app.command("build-data")(build_data)
    app.command("tasks")(tasks)
