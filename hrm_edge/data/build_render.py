"""The dataset builder's pass 2 (build.py drives it): render each task's planned copies in bounded chunks and
`pwrite` them straight into the pre-sized `.npy` files, plus the helpers that create those files.

Runs in worker processes; each keeps its own file descriptors (forget_fds after a fork, close_fds at the
end of a batch).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.arc import ArcPair, ArcTask
from hrm_edge.data.build_plan import emitted_grids, grid_layout, split_pairs, task_key
from hrm_edge.data.tokens import COLOR_OFFSET, EOS, PAD, VOCAB_SIZE

SET_NAME = "all"  # the one set of each split, as the reference names it: all__inputs.npy, ...
CHUNK_BYTES = 4 << 20  # rendering works on at most ~4 MB of tokens per chunk (bounded memory, cache-friendly)


@dataclass
class Target:
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


def close_fds() -> None:
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
    target: Target,
) -> int:
    """Render every copy of `pairs` and write input/label rows to `target`; returns rows."""
    fd_in, fd_lab = _fd(target.inputs_path), _fd(target.labels_path)
    c2 = canvas * canvas
    row = target.row
    for inputs, labels in render_chunks(pairs, dih, colors, canvas, translate, rng):
        _pwrite_all(fd_in, memoryview(inputs).cast("B"), target.header + row * c2)
        _pwrite_all(fd_lab, memoryview(labels).cast("B"), target.header + row * c2)
        row += len(inputs) * len(pairs)
    return row - target.row


def render_chunks(
    pairs: list[ArcPair],
    dih: np.ndarray,
    colors: np.ndarray,
    canvas: int,
    translate: bool,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every copy of `pairs` as (inputs, labels) chunks of shape (copies, pairs, canvas, canvas), uint8 tokens.

    The one renderer: `build-data` writes the chunks into its files, `hrm-edge adapt` keeps them in memory.

    Each grid is drawn untranslated into the right half of a slot of 2 x (canvas+1)^2 cells
    (one board of stride canvas+1: every EOS fits, the left half is PAD). Translating by
    (r0, c0) is then reading a canvas x canvas window that starts r0*(canvas+1)+c0 cells
    earlier: one block copy per grid, done for all grids at once through a strided view,
    which also crops the spare row and column (dropping the EOS the reference drops).
    """
    n_ex = len(pairs)
    if n_ex == 0 or len(dih) == 0:
        return
    stride = canvas + 1
    s2 = stride * stride
    slot = 2 * s2
    lay = grid_layout(emitted_grids(pairs), canvas, slot_size=slot, slot_pad=s2)
    span = np.maximum(lay.hw[:, :n_ex], lay.hw[:, n_ex:])  # (8, n_ex, 2): translation range
    colors_tok = colors + np.uint8(COLOR_OFFSET)
    chunk = max(1, CHUNK_BYTES // (2 * n_ex * slot))
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
        yield out[0], out[1]


def render_task(
    task: ArcTask,
    dih: np.ndarray,
    colors: np.ndarray,
    seed: int,
    canvas: int,
    translate: bool,
    targets: dict[str, Target],
    hold_out_tests: bool = False,
    validation: bool = False,
) -> int:
    parts, _ = split_pairs(task, hold_out_tests, validation)
    rng = np.random.default_rng([seed, task_key(task.id), 1])
    rows = 0
    for split, pairs in parts.splits():  # train first: its translations draw from rng as before val/ existed
        if pairs:
            rows += _render(pairs, dih, colors, canvas, translate and split == "train", rng, targets[split])
    return rows




def create_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Write an .npy header for `shape` and size the file (sparse); returns the header length."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
        )
        header = f.tell()
        f.truncate(header + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return header


def split_metadata(num_identifiers: int, groups: int, examples: int, puzzles: int, canvas: int) -> dict[str, Any]:
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


def forget_fds() -> None:
    """A forked worker drops the parent's descriptors without closing them (they are the parent's)."""
    _FDS.clear()
