"""`hrm-edge adapt` (unseen tasks' demonstrations -> an adapted checkpoint) and `hrm-edge refit` (engine weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from hrm_edge import interrupt
from hrm_edge.commands.consoles import say
from hrm_edge.commands.options import check_choice, check_device
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import check_output

ADAPT_MODES = ("embedding", "full")  # restates adapt.run.MODES (no torch import before the checks)
TASKS_HELP = ("ARC tasks to adapt to (a task .json, a folder, a combined JSON or a named set). Only their "
              "demonstration pairs are read; test inputs and outputs never are.")
MODE_HELP = ("embedding: only the new tasks' puzzle rows learn (the exported graph and a built engine stay valid; "
             "`export --update-puzzles` updates a bundle). full: the trunk too (re-export, or `refit` an engine "
             "built --refittable). lite models have no puzzle rows: full only.")
BUDGET_HELP = "Wall-clock seconds for the whole adaptation (held-out scoring included)."


def check_adapt_options(budget: Optional[float], steps: Optional[int], mode: str, device: Optional[str]) -> None:
    """The adaptation's own options, checked before any import or read."""
    check_choice("--mode", mode, ADAPT_MODES)
    check_device("--device", device)
    if (budget is None) == (steps is None):
        raise HrmEdgeError("give exactly one of --budget SECONDS and --steps N")
    if budget is not None and not budget > 0:
        raise HrmEdgeError(f"--budget must be > 0 seconds, got {budget}")


def run_adapt(tasks: str, ckpt: Path, out: Path, *, budget: Optional[float], steps: Optional[int], augment: int,
              mode: str, batch: int, device: Optional[str], seed: int, threads: Optional[int],
              evals: int = 8) -> Any:
    """Load the tasks (at the checkpoint's canvas) and adapt; shared by `adapt` and `solve --adapt`."""
    from hrm_edge.adapt.run import AdaptOptions, adapt_checkpoint
    from hrm_edge.data.arc import load_sources
    from hrm_edge.model.checkpoint import load_checkpoint

    if not ckpt.is_file():
        raise HrmEdgeError("no such checkpoint", ckpt)
    canvas = int(load_checkpoint(ckpt).config.canvas)
    res = load_sources([tasks], canvas=canvas)
    for p in res.errors + res.duplicates:
        say(f"skipped: {p}")
    if not res.tasks:
        raise HrmEdgeError(f"no tasks that fit the model's {canvas}x{canvas} canvas", tasks)
    opts = AdaptOptions(budget=budget, steps=steps, augment=augment, mode=mode, batch=batch,
                        device=device or "cpu", seed=seed, threads=threads, evals=evals)
    return adapt_checkpoint(ckpt, res.tasks, out, opts, say=say)


def report(result: Any, path_on_stdout: bool = True) -> None:
    kept = result.kept_score
    held = (f"held-out pass@2 {kept['pass@2']:.3f} pass@1 {kept['pass@1']:.3f} on {result.held_out} tasks, "
            f"state of step {result.kept_step} kept" if kept else
            "no task has enough demonstrations to hold one out; the last state is kept")
    stop = " (interrupted: the state kept so far was written)" if result.stopped_by else ""
    say(f"adapted {len(result.tasks)} tasks in {result.steps} steps, {result.seconds:.0f} s ({result.mode}, "
        f"{result.rows_added} rows appended); {held}{stop}")
    if path_on_stdout:
        print(result.out)


def adapt(
    tasks: str = typer.Argument(..., metavar="TASKS", help=TASKS_HELP),
    ckpt: Path = typer.Option(..., "--ckpt", help="The base checkpoint (ACT v1 or TRM)."),
    out: Path = typer.Option(..., "--out", help="The adapted checkpoint (an ordinary one: solve, export, compare "
                                                "take it)."),
    budget: Optional[float] = typer.Option(None, "--budget", metavar="SECONDS", help=BUDGET_HELP),
    steps: Optional[int] = typer.Option(None, "--steps", min=0, help="Optimizer steps (instead of --budget); 0 "
                                        "appends the rows at their start value and trains nothing (zero-shot)."),
    augment: int = typer.Option(64, "--augment", min=0, help="Augmented copies of each task's demonstrations "
                                "(build-data's rule; each copy gets its own puzzle row)."),
    mode: str = typer.Option("embedding", "--mode", metavar="MODE", help=MODE_HELP),
    batch: int = typer.Option(32, "--batch", min=1, help="Examples per optimizer step."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="cpu, cuda or cuda:N. "
                                         "Default: cpu."),
    seed: int = typer.Option(0, "--seed", help="Seed of the augmentations, the sampling order and the exploration."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    evals: int = typer.Option(8, "--evals", min=0, help="Times the held-out demonstrations are solved to pick the "
                              "state kept (each costs a solve of them; part of the budget)."),
) -> None:
    """Adapt a model to unseen ARC tasks from their demonstration pairs: new puzzle rows (and, with --mode full,
    the trunk), trained with the trainer's loss and optimizers within a budget; Ctrl-C keeps the state so far."""
    check_adapt_options(budget, steps, mode, device)
    check_output(out, "file", "adapted checkpoint")
    interrupt.nothing_written(out, out.exists(), "the adapted checkpoint is written at the end, also on Ctrl-C")
    report(run_adapt(tasks, ckpt, out, budget=budget, steps=steps, augment=augment, mode=mode, batch=batch,
                     device=device, seed=seed, threads=threads, evals=evals))


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt)
