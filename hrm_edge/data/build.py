"""Dataset builder: ARC tasks -> augmented token arrays in the HRM reference on-disk layout.

Layout written (the reference's `dataset/build_arc_dataset.py`, so its trainer reads it as is):

    OUT/identifiers.json               ["<blank>", "007bbfb7", "007bbfb7_t3_0417239856", ...]
    OUT/{train,test}/dataset.json      PuzzleDatasetMetadata fields
    OUT/{train,test}/all__inputs.npy   uint8 (examples, canvas*canvas)
    OUT/{train,test}/all__labels.npy   uint8 (examples, canvas*canvas)
    OUT/{train,test}/all__puzzle_identifiers.npy  int32 (puzzles,)
    OUT/{train,test}/all__puzzle_indices.npy      int32 (puzzles + 1,)  example start of each puzzle
    OUT/{train,test}/all__group_indices.npy       int32 (groups + 1,)   puzzle start of each group
    OUT/val/...                        (--validation only) the same files: one held-out demonstration pair
                                       per task with >= 3 of them, for choosing a checkpoint (not reference)
    OUT/build.json                     hrm-edge's own record: sources, seed, per-task identifier ranges

Semantics kept from the reference: a group is one task, its puzzles are the task and its
augmented copies (identifier = task id, or `{task}_t{k}_{colours}`), identifier 0 is the blank
puzzle; tasks from an evaluation set put their train pairs in `train` and their test pairs in
`test`, other tasks put all their pairs in `train`; copies that are identical to an earlier
copy of the same task are dropped (up to 5 x N draws, as the reference); train examples are
translated to a random offset, except one example per puzzle kept at the top-left.

Unlike the reference (which holds every example in Python lists: 1.4 GB at 100 copies of
ARC-AGI-1 and out of memory at 1000 on 16 GB), this streams: pass 1 plans each task's distinct
copies (small), the main process sizes the output files, pass 2 renders each task in bounded
chunks and `pwrite`s them straight into place. Both passes run on every core; output is
written to a temporary folder renamed into place at the end. Pass 1 is build_plan.py, pass 2
build_render.py; this module is the driver (options, executors, sizing, metadata, build.json).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.arc import ArcTask, TaskError, load_sources
from hrm_edge.data.build_plan import VAL_MIN_PAIRS, TaskPlan, plan_task, split_pairs, validation_pair
from hrm_edge.data.build_render import SET_NAME, Target, close_fds, create_npy, forget_fds, render_task, split_metadata
from hrm_edge.data.tokens import DEFAULT_CANVAS
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import StagedDir, check_output

BLANK = "<blank>"
SPLITS = ("train", "test", "val")  # val/: only with --validation
FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")


@dataclass
class BuildConfig:
    """What to build; `workers` None means every core."""

    sources: list[str]
    out: Path
    augment: int
    seed: int = 42
    canvas: int = DEFAULT_CANVAS
    translate: bool = True
    workers: int | None = None
    overwrite: bool = False
    #: every task's test pairs go to test/ (not only evaluation tasks'): no test input is trained on
    hold_out_tests: bool = False
    #: leave out tasks with a grid larger than the canvas (counted in `larger`, not reported as problems)
    skip_larger: bool = False
    #: one demonstration pair per task (with >= VAL_MIN_PAIRS of them) goes to val/, never to train/: a
    #: validation signal that is not the test pairs, for choosing a checkpoint (the trainer reads val/ first)
    validation: bool = False


@dataclass
class BuildReport:
    """What was built, for the command line and for build.json."""

    out: Path
    tasks: int
    examples: dict[str, int]
    puzzles: dict[str, int]
    identifiers: int
    not_full: list[str]
    errors: list[TaskError]
    duplicates: list[TaskError]
    seconds: float
    skipped_unlabelled: int = 0
    larger: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    task_records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total_examples(self) -> int:
        return sum(self.examples.values())


# --------------------------------------------------------------------------- driver


class _InlineExecutor(Executor):
    """workers=1: run in this process (easier to debug, no fork)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)
        return fut


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return _InlineExecutor()
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)


def _cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow), not the host's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_init() -> None:
    forget_fds()  # a forked worker must not reuse (or close) the parent's descriptors
    # Ctrl-C reaches the whole process group: the parent stops the build and cleans up, the workers
    # must not each die with a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _plan_batch(jobs: list[tuple[int, ArcTask]], augment: int, seed: int, canvas: int) -> list[TaskPlan]:
    return [plan_task(i, t, augment, seed, canvas) for i, t in jobs]


def _render_batch(jobs: list[tuple[ArcTask, np.ndarray, np.ndarray, dict[str, Target]]], seed: int,
                  canvas: int, translate: bool, hold_out_tests: bool = False, validation: bool = False) -> int:
    try:
        return sum(render_task(t, d, c, seed, canvas, translate, tg, hold_out_tests, validation)
                   for t, d, c, tg in jobs)
    finally:
        close_fds()


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


ProgressFn = Callable[[str, int, int], None]  # (phase, advance, total)


def check_build_config(cfg: BuildConfig) -> Path:
    """The options and the output folder, checked before any task is read (the CLI calls this first)."""
    if cfg.augment < 0:
        raise HrmEdgeError(f"--augment must be >= 0, got {cfg.augment}")
    if not 1 <= cfg.canvas <= 255:
        raise HrmEdgeError(f"--canvas must be in 1..255, got {cfg.canvas}")
    out = check_output(cfg.out, "dir", "dataset folder")
    if out.exists() and not cfg.overwrite and any(out.iterdir()):
        raise HrmEdgeError("output exists (use --overwrite to replace it)", path=out)
    return out


def build_dataset(cfg: BuildConfig, progress: ProgressFn | None = None) -> BuildReport:
    """Load, validate, augment and write a dataset; see the module docstring for the layout."""
    t0 = time.perf_counter()
    out = check_build_config(cfg)
    loaded = load_sources(list(cfg.sources), max(cfg.canvas, DEFAULT_CANVAS) if cfg.skip_larger else cfg.canvas)
    tasks = loaded.tasks
    larger: list[str] = []
    if cfg.skip_larger:
        fits = [t.fits(cfg.canvas) for t in tasks]
        larger = [t.id for t, ok in zip(tasks, fits) if not ok]
        tasks = [t for t, ok in zip(tasks, fits) if ok]
    if not tasks:
        raise HrmEdgeError(f"no valid tasks in {', '.join(map(str, cfg.sources))} ({len(loaded.errors)} problems)")
    timings = {"load_s": time.perf_counter() - t0}
    workers = cfg.workers or _cores()
    with StagedDir(out) as staged:
        ex = _executor(workers)
        try:
            report = _build_into(staged.dir, cfg, tasks, ex, workers, progress, timings)
        except BaseException:  # Ctrl-C or a failure: drop queued batches instead of finishing them
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
        report.errors = loaded.errors
        report.larger = larger
        report.duplicates = loaded.duplicates
        report.seconds = time.perf_counter() - t0
        report.timings = {k: round(v, 3) for k, v in timings.items()}
        _write_build_json(staged.dir, cfg, report)
        staged.commit()
    report.out = out
    return report


def _build_into(
    tmp: Path,
    cfg: BuildConfig,
    tasks: list[ArcTask],
    ex: Executor,
    workers: int,
    progress: ProgressFn | None,
    timings: dict[str, float],
) -> BuildReport:
    t_plan = time.perf_counter()
    n_tasks = len(tasks)
    # Small batches keep both cores busy to the end; big tasks are not special-cased.
    per_batch = max(1, min(16, n_tasks // (workers * 8) or 1))
    plans: list[TaskPlan | None] = [None] * n_tasks
    futures = [
        ex.submit(_plan_batch, batch, cfg.augment, cfg.seed, cfg.canvas)
        for batch in _batches(list(enumerate(tasks)), per_batch)
    ]
    for fut in as_completed(futures):
        done = fut.result()
        for p in done:
            plans[p.index] = p
        if progress:
            progress("plan", len(done), n_tasks)
    timings["plan_s"] = time.perf_counter() - t_plan

    # Size everything: identifiers, rows per split, index arrays.
    splits = {s: 0 for s in SPLITS}
    puzzle_ids: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    puzzle_sizes: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    group_sizes: dict[str, list[int]] = {s: [] for s in SPLITS}
    task_rows: list[dict[str, int]] = []
    next_id = 1
    skipped_unlabelled = 0
    records: list[dict[str, Any]] = []
    not_full: list[str] = []
    for task, plan in zip(tasks, plans):
        assert plan is not None
        parts, skipped = split_pairs(task, cfg.hold_out_tests, cfg.validation)
        skipped_unlabelled += skipped
        k = len(plan.dihedral)
        ids = np.arange(next_id, next_id + k, dtype=np.int32)
        rows: dict[str, int] = {}
        for split, pairs in parts.splits():
            if not pairs:
                continue
            rows[split] = splits[split]
            splits[split] += k * len(pairs)
            puzzle_ids[split].append(ids)
            puzzle_sizes[split].append(np.full(k, len(pairs), dtype=np.int64))
            group_sizes[split].append(k)
        task_rows.append(rows)
        if k < cfg.augment + 1:
            not_full.append(task.id)
        record = {"id": task.id, "source": task.source, "split": task.split, "first_identifier": next_id,
                  "copies": k, "examples": {s: k * len(p) for s, p in parts.splits() if p}}
        if cfg.validation:
            record["validation_pair"] = validation_pair(task)  # index in the task's train list, or None
        records.append(record)
        next_id += k
    num_identifiers = next_id

    # identifiers.json, streamed in task order.
    with open(tmp / "identifiers.json", "w", encoding="utf-8") as f:
        f.write(json.dumps([BLANK])[:-1])
        for plan in plans:
            assert plan is not None
            f.write(", ")
            f.write(plan.names_json)
        f.write("]")

    c2 = cfg.canvas * cfg.canvas
    headers: dict[str, int] = {}
    present = [s for s in SPLITS if group_sizes[s]]
    for split in present:
        d = tmp / split
        d.mkdir()
        headers[split] = create_npy(d / f"{SET_NAME}__inputs.npy", (splits[split], c2), np.dtype(np.uint8))
        create_npy(d / f"{SET_NAME}__labels.npy", (splits[split], c2), np.dtype(np.uint8))
        pid = np.concatenate(puzzle_ids[split])
        pidx = np.concatenate([[0], np.cumsum(np.concatenate(puzzle_sizes[split]))])
        gidx = np.concatenate([[0], np.cumsum(group_sizes[split])])
        if pidx[-1] >= 2**31:
            raise HrmEdgeError(f"{split} split has {pidx[-1]} examples, more than int32 indices allow")
        np.save(d / f"{SET_NAME}__puzzle_identifiers.npy", pid.astype(np.int32))
        np.save(d / f"{SET_NAME}__puzzle_indices.npy", pidx.astype(np.int32))
        np.save(d / f"{SET_NAME}__group_indices.npy", gidx.astype(np.int32))
        meta = split_metadata(num_identifiers, len(group_sizes[split]), splits[split], len(pid), cfg.canvas)
        with open(d / "dataset.json", "w", encoding="utf-8") as f:
            json.dump(meta, f)
    timings["size_s"] = time.perf_counter() - t_plan - timings["plan_s"]

    # Pass 2: render and write in place.
    t_render = time.perf_counter()
    total_rows = sum(splits.values())
    jobs = []
    for task, plan, rows in zip(tasks, plans, task_rows):
        assert plan is not None
        targets = {
            s: Target(str(tmp / s / f"{SET_NAME}__inputs.npy"), str(tmp / s / f"{SET_NAME}__labels.npy"),
                       headers[s], r)
            for s, r in rows.items()
        }
        jobs.append((task, plan.dihedral, plan.colors, targets))
    futures = [ex.submit(_render_batch, batch, cfg.seed, cfg.canvas, cfg.translate, cfg.hold_out_tests,
                         cfg.validation)
               for batch in _batches(jobs, per_batch)]
    written = 0
    for fut in as_completed(futures):
        n = fut.result()
        written += n
        if progress:
            progress("write", n, total_rows)
    if written != total_rows:
        raise HrmEdgeError(f"internal error: wrote {written} examples, expected {total_rows}")
    timings["render_s"] = time.perf_counter() - t_render
    return BuildReport(
        out=tmp,
        tasks=n_tasks,
        examples={s: splits[s] for s in present},
        puzzles={s: int(sum(group_sizes[s])) for s in present},
        identifiers=num_identifiers,
        not_full=not_full,
        errors=[],
        duplicates=[],
        seconds=0.0,
        skipped_unlabelled=skipped_unlabelled,
        task_records=records,
    )


def _write_build_json(out: Path, cfg: BuildConfig, report: BuildReport) -> None:
    """hrm-edge's record of the build: inputs, per-task identifier ranges, problems."""
    from hrm_edge import __version__

    record = {
        "hrm_edge_version": __version__,
        "sources": list(map(str, cfg.sources)),
        "augment": cfg.augment,
        "seed": cfg.seed,
        "canvas": cfg.canvas,
        "translate": cfg.translate,
        "tasks": report.tasks,
        "identifiers": report.identifiers,
        "examples": report.examples,
        "puzzles": report.puzzles,
        "seconds": round(report.seconds, 3),
        "timings": report.timings,
        "not_full": report.not_full,
        "skipped_unlabelled_test_pairs": report.skipped_unlabelled,
        "hold_out_tests": cfg.hold_out_tests,
        "validation": cfg.validation,
        "validation_min_pairs": VAL_MIN_PAIRS,
        "skip_larger": cfg.skip_larger,
        "larger_than_canvas": report.larger,
        "errors": [str(e) for e in report.errors],
        "duplicates": [str(e) for e in report.duplicates],
        "task_records": report.task_records,
    }
    with open(out / "build.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
