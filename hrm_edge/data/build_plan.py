"""The dataset builder's pass 1 (build.py drives it): per-task tables and each task's plan of distinct copies.

A task's pairs are split into what goes to train/ and test/; every grid gets its canvas layout (cell and
EOS positions, shared by all copies), and up to RETRIES_FACTOR x N dihedral x colour draws are tried
until N copies differ from each other (the reference's rule). Small results: the main process sizes the
output files from them before any token is rendered.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hrm_edge.data.arc import ArcPair, ArcTask
from hrm_edge.data.augment import dihedral_index, random_colors

RETRIES_FACTOR = 5  # the reference draws at most 5 x N candidate copies per task


VAL_MIN_PAIRS = 3  # a task gives a validation pair only if at least 2 demonstration pairs stay in train/


@dataclass
class _Parts:
    """A task's emitted pairs per output split."""

    train: list[ArcPair]
    test: list[ArcPair]
    val: list[ArcPair] = field(default_factory=list)

    @property
    def all(self) -> list[ArcPair]:
        return self.train + self.test + self.val

    def splits(self) -> tuple[tuple[str, list[ArcPair]], ...]:
        """(split, pairs) in the order examples are laid out."""
        return (("train", self.train), ("test", self.test), ("val", self.val))


def validation_pair(task: ArcTask) -> int | None:
    """Index in `task.train` of the demonstration pair `--validation` holds out: the last one, for tasks with at
    least VAL_MIN_PAIRS demonstration pairs (fewer would leave a single pair to learn the rule from); else None.

    Fixed by the task alone (not the seed), so runs with different seeds select on the same pairs."""
    return len(task.train) - 1 if len(task.train) >= VAL_MIN_PAIRS else None


def split_pairs(task: ArcTask, hold_out_tests: bool = False, validation: bool = False) -> tuple[_Parts, int]:
    """Reference split rule (or every task's test pairs held out); test pairs without a known output
    cannot be examples (counted). `validation`: the task's `validation_pair` goes to val/, not train/, so
    a trainer can choose its checkpoint without reading the test pairs it is reported on."""
    labelled = [p for p in task.test if p.output is not None]
    skipped = len(task.test) - len(labelled)
    demos, val = list(task.train), []
    held = validation_pair(task) if validation else None
    if held is not None:
        val = [demos.pop(held)]
    if hold_out_tests or task.split == "evaluation":
        return _Parts(demos, labelled, val), skipped
    return _Parts(demos + labelled, [], val), skipped


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


def grid_layout(grids: list[np.ndarray], canvas: int, slot_size: int = 0, slot_pad: int = 0) -> _Layout:
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


def task_key(task_id: str) -> int:
    return zlib.crc32(task_id.encode("utf-8"))


def emitted_grids(pairs: list[ArcPair]) -> list[np.ndarray]:
    """Inputs then outputs: the slot order `_render` uses (so its outputs come out contiguous)."""
    return [p.input for p in pairs] + [p.output for p in pairs]  # type: ignore[misc]




@dataclass
class TaskPlan:
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


def plan_task(index: int, task: ArcTask, augment: int, seed: int, canvas: int) -> TaskPlan:
    """Draw candidate copies until `augment` distinct ones (by content) or 5 x augment draws.

    Content equality is exact: the key of a copy is every transformed colour of every
    emitted grid plus whether the transform transposes (which changes the shapes of
    non-square grids), compared as bytes. Like the reference, a copy identical to the task
    itself or to an earlier copy is dropped, and a task with few colours and symmetric grids
    may end up with fewer than `augment` copies ("not full").
    """
    parts, _ = split_pairs(task)
    grids = emitted_grids(parts.all)
    lay = grid_layout(grids, canvas)
    square = all(g.shape[0] == g.shape[1] for g in grids)
    transposes = np.array([0, 1, 0, 1, 0, 0, 1, 1], dtype=np.uint8)
    ds = [np.zeros(1, dtype=np.uint8)]
    cs = [np.arange(10, dtype=np.uint8)[None, :]]
    seen = {lay.vals[0].tobytes() + b"\x00"}
    kept = 1
    tried = 0
    rng = np.random.default_rng([seed, task_key(task.id), 0])
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
    return TaskPlan(index, dih, col, tried, ", ".join(names))
