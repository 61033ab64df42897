"""Dataset builder: ARC tasks -> augmented token arrays in the HRM reference on-disk layout.

Layout written (the reference's `dataset/build_arc_dataset.py`, so its trainer reads it as is):

    OUT/identifiers.json               ["<blank>", "007bbfb7", "007bbfb7_t3_0417239856", ...]
    OUT/{train,test}/dataset.json      PuzzleDatasetMetadata fields
    OUT/{train,test}/all__inputs.npy   uint8 (examples, canvas*canvas)
    OUT/{train,test}/all__labels.npy   uint8 (examples, canvas*canvas)
    OUT/{train,test}/all__puzzle_identifiers.npy  int32 (puzzles,)
    OUT/{train,test}/all__puzzle_indices.npy      int32 (puzzles + 1,)  example start of each puzzle
    OUT/{train,test}/all__group_indices.npy       int32 (groups + 1,)   puzzle start of each group
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
written to a temporary folder renamed into place at the end.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.arc import ArcPair, ArcTask, TaskError, load_sources
from hrm_edge.data.augment import dihedral_index, random_colors
from hrm_edge.data.tokens import COLOR_OFFSET, DEFAULT_CANVAS, EOS, PAD, VOCAB_SIZE
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import StagedDir, check_output

SET_NAME = "all"
BLANK = "<blank>"
RETRIES_FACTOR = 5  # the reference draws at most 5 x N candidate copies per task
CHUNK_BYTES = 4 << 20  # rendering works on at most ~4 MB of tokens per chunk (bounded memory, cache-friendly)
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


# --------------------------------------------------------------------------- per-task tables


@dataclass
class _Parts:
    """A task's emitted pairs per output split."""

    train: list[ArcPair]
    test: list[ArcPair]

    @property
    def all(self) -> list[ArcPair]:
        return self.train + self.test


def _split_pairs(task: ArcTask, hold_out_tests: bool = False) -> tuple[_Parts, int]:
    """Reference split rule (or every task's test pairs held out); test pairs without a known output
    cannot be examples (counted)."""
    labelled = [p for p in task.test if p.output is not None]
    skipped = len(task.test) - len(labelled)
    if hold_out_tests or task.split == "evaluation":
        return _Parts(list(task.train), labelled), skipped
    return _Parts(list(task.train) + labelled, []), skipped


@lru_cache(maxsize=4096)
def _shape_tables(h: int, w: int, canvas: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For an h x w grid and each of the 8 transforms: gather indices, cell and EOS positions.

    Positions are on a board of stride canvas+1 (one spare column and row), where every EOS
    fits; returns (gather (8, h*w), cells (8, h*w), eos (8, h+w), shape (8, 2)).
    """
    stride = canvas + 1
    gather = np.empty((8, h * w), dtype=np.intp)
    cells = np.empty((8, h * w), dtype=np.intp)
    eos = np.empty((8, h + w), dtype=np.intp)
    shape = np.empty((8, 2), dtype=np.int64)
    for k in range(8):
        idx, (th, tw) = dihedral_index(h, w, k)
        rows, cols = np.arange(th), np.arange(tw)
        gather[k] = idx
        cells[k] = (rows[:, None] * stride + cols[None, :]).ravel()
        eos[k] = np.concatenate([rows * stride + tw, th * stride + cols])
        shape[k] = (th, tw)
    return gather, cells, eos, shape


@dataclass
class _Layout:
    """Every dihedral transform of a list of grids, one grid per board slot.

    vals[k]: source colours of all cells after transform k, concatenated slot by slot;
    cells[k] / eos[k]: flat positions of those cells / of the EOS tokens on a board whose
    slots are `slot_size` apart, each grid drawn `slot_pad` into its slot (see `_render`);
    hw[k, s]: transformed (h, w) of slot s's grid.
    """

    vals: np.ndarray
    cells: np.ndarray
    eos: np.ndarray
    hw: np.ndarray


def _layout(grids: list[np.ndarray], canvas: int, slot_size: int = 0, slot_pad: int = 0) -> _Layout:
    vals, cells, eos, hw = [], [], [], []
    for s, g in enumerate(grids):
        gather, cell_pos, eos_pos, shape = _shape_tables(g.shape[0], g.shape[1], canvas)
        base = s * slot_size + slot_pad
        vals.append(g.ravel()[gather])
        cells.append(cell_pos + base)
        eos.append(eos_pos + base)
        hw.append(shape)
    return _Layout(
        vals=np.concatenate(vals, axis=1).astype(np.uint8, copy=False),
        cells=np.concatenate(cells, axis=1),
        eos=np.concatenate(eos, axis=1),
        hw=np.stack(hw, axis=1),
    )


def _task_key(task_id: str) -> int:
    return zlib.crc32(task_id.encode("utf-8"))


def _emitted_grids(pairs: list[ArcPair]) -> list[np.ndarray]:
    """Inputs then outputs: the slot order `_render` uses (so its outputs come out contiguous)."""
    return [p.input for p in pairs] + [p.output for p in pairs]  # type: ignore[misc]


# --------------------------------------------------------------------------- pass 1: plan


@dataclass
class _Plan:
    """A task's distinct copies, identity first then sorted by dihedral id (render in runs)."""

    index: int
    dihedral: np.ndarray  # (k,) uint8
    colors: np.ndarray  # (k, 10) uint8
    tried: int
    names_json: str  # the copies' identifiers as a JSON list fragment: `"a", "a_t1_0..."`


def _permute(colors: np.ndarray, dih: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """out[i] = colors[i][vals[dih[i]]]: every copy's cells, one `take` per dihedral id."""
    out = np.empty((len(dih), vals.shape[1]), dtype=np.uint8)
    for k in np.unique(dih).tolist():
        rows = np.flatnonzero(dih == k)
        out[rows] = np.take(colors[rows], vals[k], axis=1)
    return out


def _plan_task(index: int, task: ArcTask, augment: int, seed: int, canvas: int) -> _Plan:
    """Draw candidate copies until `augment` distinct ones (by content) or 5 x augment draws.

    Content equality is exact: the key of a copy is every transformed colour of every
    emitted grid plus whether the transform transposes (which changes the shapes of
    non-square grids), compared as bytes. Like the reference, a copy identical to the task
    itself or to an earlier copy is dropped, and a task with few colours and symmetric grids
    may end up with fewer than `augment` copies ("not full").
    """
    parts, _ = _split_pairs(task)
    grids = _emitted_grids(parts.all)
    lay = _layout(grids, canvas)
    square = all(g.shape[0] == g.shape[1] for g in grids)
    transposes = np.array([0, 1, 0, 1, 0, 0, 1, 1], dtype=np.uint8)
    ds = [np.zeros(1, dtype=np.uint8)]
    cs = [np.arange(10, dtype=np.uint8)[None, :]]
    seen = {lay.vals[0].tobytes() + b"\x00"}
    kept = 1
    tried = 0
    rng = np.random.default_rng([seed, _task_key(task.id), 0])
    budget = RETRIES_FACTOR * augment
    while kept < augment + 1 and tried < budget:
        n = min(budget - tried, max(16, int((augment + 1 - kept) * 1.25)))
        d = rng.integers(0, 8, size=n).astype(np.uint8)
        c = random_colors(rng, n)
        tried += n
        vals = _permute(c, d, lay.vals)
        flags = np.zeros(n, dtype=np.uint8) if square else transposes[d]
        keep = np.zeros(n, dtype=bool)
        for i in range(n):
            key = vals[i].tobytes() + bytes((int(flags[i]),))
            if key not in seen:
                seen.add(key)
                keep[i] = True
                kept += 1
                if kept == augment + 1:
                    break
        ds.append(d[keep])
        cs.append(c[keep])
    dih = np.concatenate(ds)
    col = np.concatenate(cs)
    order = np.argsort(dih, kind="stable")  # identity (d=0, first) stays first
    dih, col = dih[order], np.ascontiguousarray(col[order])
    tid = json.dumps(task.id)
    digits = (col + np.uint8(ord("0"))).view("S10")[:, 0]
    names = [tid] + [f'{tid[:-1]}_t{k}_{dg.decode()}"' for k, dg in zip(dih[1:].tolist(), digits[1:].tolist())]
    return _Plan(index, dih, col, tried, ", ".join(names))


# --------------------------------------------------------------------------- pass 2: render


@dataclass
class _Target:
    """Where one split of one task goes: files and first row."""

    inputs_path: str
    labels_path: str
    header: int  # bytes before row 0 in both files
    row: int  # first example row of this task in the split


_FDS: dict[str, int] = {}


def _fd(path: str) -> int:
    fd = _FDS.get(path)
    if fd is None:
        fd = os.open(path, os.O_WRONLY)
        _FDS[path] = fd
    return fd


def _close_fds() -> None:
    while _FDS:
        os.close(_FDS.popitem()[1])


def _pwrite_all(fd: int, buf: memoryview, offset: int) -> None:
    while buf.nbytes:
        n = os.pwrite(fd, buf, offset)
        buf, offset = buf[n:], offset + n


def _render(
    pairs: list[ArcPair],
    dih: np.ndarray,
    colors: np.ndarray,
    canvas: int,
    translate: bool,
    rng: np.random.Generator,
    target: _Target,
) -> int:
    """Render every copy of `pairs` and write input/label rows to `target`; returns rows.

    Each grid is drawn untranslated into the right half of a slot of 2 x (canvas+1)^2 cells
    (one board of stride canvas+1: every EOS fits, the left half is PAD). Translating by
    (r0, c0) is then reading a canvas x canvas window that starts r0*(canvas+1)+c0 cells
    earlier: one block copy per grid, done for all grids at once through a strided view,
    which also crops the spare row and column (dropping the EOS the reference drops).
    """
    n_ex = len(pairs)
    if n_ex == 0 or len(dih) == 0:
        return 0
    stride = canvas + 1
    s2 = stride * stride
    slot = 2 * s2
    lay = _layout(_emitted_grids(pairs), canvas, slot_size=slot, slot_pad=s2)
    span = np.maximum(lay.hw[:, :n_ex], lay.hw[:, n_ex:])  # (8, n_ex, 2): translation range
    colors_tok = colors + np.uint8(COLOR_OFFSET)
    chunk = max(1, CHUNK_BYTES // (2 * n_ex * slot))
    fd_in, fd_lab = _fd(target.inputs_path), _fd(target.labels_path)
    c2 = canvas * canvas
    row = target.row
    for start in range(0, len(dih), chunk):
        d = dih[start : start + chunk]
        b = len(d)
        board = np.zeros((b, 2 * n_ex * slot), dtype=np.uint8)
        for k in np.unique(d).tolist():
            rows = np.flatnonzero(d == k)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            if hi - lo == len(rows):  # plans sort copies by d: one run of rows, plain slices (fast)
                board[lo:hi, lay.cells[k]] = np.take(colors_tok[start + lo : start + hi], lay.vals[k], axis=1)
                board[lo:hi, lay.eos[k]] = EOS
            else:
                board[rows[:, None], lay.cells[k][None, :]] = np.take(colors_tok[start + rows], lay.vals[k], axis=1)
                board[rows[:, None], lay.eos[k][None, :]] = EOS
        first = np.full((b, n_ex), s2, dtype=np.intp)  # window start inside each slot
        if translate:
            off = rng.integers(0, canvas - span[d.astype(np.intp)] + 1)  # (b, n_ex, 2)
            off[np.arange(b), rng.integers(0, n_ex, size=b)] = 0  # one example stays home
            first -= off[..., 0] * stride + off[..., 1]
        item = board.strides[1]
        windows = np.lib.stride_tricks.as_strided(
            board,
            shape=(b, 2, n_ex, s2 + 1, canvas, canvas),
            strides=(board.strides[0], n_ex * slot * item, slot * item, item, stride * item, item),
            writeable=False,
        )
        out = windows[
            np.arange(b)[None, :, None], np.arange(2)[:, None, None], np.arange(n_ex)[None, None, :], first[None]
        ]  # (2, b, n_ex, canvas, canvas), contiguous
        _pwrite_all(fd_in, memoryview(out[0]).cast("B"), target.header + row * c2)
        _pwrite_all(fd_lab, memoryview(out[1]).cast("B"), target.header + row * c2)
        row += b * n_ex
    return row - target.row


def _render_task(
    task: ArcTask,
    dih: np.ndarray,
    colors: np.ndarray,
    seed: int,
    canvas: int,
    translate: bool,
    targets: dict[str, _Target],
    hold_out_tests: bool = False,
) -> int:
    parts, _ = _split_pairs(task, hold_out_tests)
    rng = np.random.default_rng([seed, _task_key(task.id), 1])
    rows = 0
    for split, pairs in (("train", parts.train), ("test", parts.test)):
        if pairs:
            rows += _render(pairs, dih, colors, canvas, translate and split == "train", rng, targets[split])
    return rows


# --------------------------------------------------------------------------- output files


def _create_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Write an .npy header for `shape` and size the file (sparse); returns the header length."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        )
        header = f.tell()
        f.truncate(header + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return header


def _metadata(num_identifiers: int, groups: int, examples: int, puzzles: int, canvas: int) -> dict[str, Any]:
    """The reference's PuzzleDatasetMetadata, field for field and in its order."""
    return {
        "pad_id": PAD,
        "ignore_label_id": PAD,
        "blank_identifier_id": 0,
        "vocab_size": VOCAB_SIZE,
        "seq_len": canvas * canvas,
        "num_puzzle_identifiers": num_identifiers,
        "total_groups": groups,
        "mean_puzzle_examples": examples / puzzles if puzzles else 0.0,
        "sets": [SET_NAME],
    }


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
    _FDS.clear()  # a forked worker must not reuse (or close) the parent's descriptors
    # Ctrl-C reaches the whole process group: the parent stops the build and cleans up, the workers
    # must not each die with a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _plan_batch(jobs: list[tuple[int, ArcTask]], augment: int, seed: int, canvas: int) -> list[_Plan]:
    return [_plan_task(i, t, augment, seed, canvas) for i, t in jobs]


def _render_batch(jobs: list[tuple[ArcTask, np.ndarray, np.ndarray, dict[str, _Target]]], seed: int,
                  canvas: int, translate: bool, hold_out_tests: bool = False) -> int:
    try:
        return sum(_render_task(t, d, c, seed, canvas, translate, tg, hold_out_tests) for t, d, c, tg in jobs)
    finally:
        _close_fds()


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
    plans: list[_Plan | None] = [None] * n_tasks
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
    splits = {"train": 0, "test": 0}
    puzzle_ids: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    puzzle_sizes: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    group_sizes: dict[str, list[int]] = {"train": [], "test": []}
    task_rows: list[dict[str, int]] = []
    next_id = 1
    skipped_unlabelled = 0
    records: list[dict[str, Any]] = []
    not_full: list[str] = []
    for task, plan in zip(tasks, plans):
        assert plan is not None
        parts, skipped = _split_pairs(task, cfg.hold_out_tests)
        skipped_unlabelled += skipped
        k = len(plan.dihedral)
        ids = np.arange(next_id, next_id + k, dtype=np.int32)
        rows: dict[str, int] = {}
        for split, pairs in (("train", parts.train), ("test", parts.test)):
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
        records.append(
            {"id": task.id, "source": task.source, "split": task.split, "first_identifier": next_id, "copies": k,
             "examples": {s: k * len(p) for s, p in (("train", parts.train), ("test", parts.test)) if p}}
        )
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
    present = [s for s in ("train", "test") if group_sizes[s]]
    for split in present:
        d = tmp / split
        d.mkdir()
        headers[split] = _create_npy(d / f"{SET_NAME}__inputs.npy", (splits[split], c2), np.dtype(np.uint8))
        _create_npy(d / f"{SET_NAME}__labels.npy", (splits[split], c2), np.dtype(np.uint8))
        pid = np.concatenate(puzzle_ids[split])
        pidx = np.concatenate([[0], np.cumsum(np.concatenate(puzzle_sizes[split]))])
        gidx = np.concatenate([[0], np.cumsum(group_sizes[split])])
        if pidx[-1] >= 2**31:
            raise HrmEdgeError(f"{split} split has {pidx[-1]} examples, more than int32 indices allow")
        np.save(d / f"{SET_NAME}__puzzle_identifiers.npy", pid.astype(np.int32))
        np.save(d / f"{SET_NAME}__puzzle_indices.npy", pidx.astype(np.int32))
        np.save(d / f"{SET_NAME}__group_indices.npy", gidx.astype(np.int32))
        meta = _metadata(num_identifiers, len(group_sizes[split]), splits[split], len(pid), cfg.canvas)
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
            s: _Target(str(tmp / s / f"{SET_NAME}__inputs.npy"), str(tmp / s / f"{SET_NAME}__labels.npy"),
                       headers[s], r)
            for s, r in rows.items()
        }
        jobs.append((task, plan.dihedral, plan.colors, targets))
    futures = [ex.submit(_render_batch, batch, cfg.seed, cfg.canvas, cfg.translate, cfg.hold_out_tests)
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
        "skip_larger": cfg.skip_larger,
        "larger_than_canvas": report.larger,
        "errors": [str(e) for e in report.errors],
        "duplicates": [str(e) for e in report.duplicates],
        "task_records": report.task_records,
    }
    with open(out / "build.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
