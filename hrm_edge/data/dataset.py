"""Memory-mapped reader for datasets in the HRM reference layout (ours or the reference's).

Inputs and labels are memory-mapped, never read whole: a 1000-copy ARC-AGI-1 build is ~6 GB
and must open in milliseconds on a 16 GB machine. The small index arrays (puzzle and group
boundaries, identifiers) are loaded, as the reference's own loader does. Opening checks the
layout (files, dtypes, shapes, index consistency) so a truncated or foreign folder fails here
with one clear message rather than deep inside training.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.augment import Augmentation
from hrm_edge.errors import HrmEdgeError

METADATA_FIELDS = (
    "pad_id",
    "ignore_label_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
    "mean_puzzle_examples",
    "sets",
)
ARRAY_FIELDS = ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
_AUG_SUFFIX = re.compile(r"^(.*)_(t[0-7]_[0-9]{10})$")


@dataclass(frozen=True)
class DatasetMetadata:
    """The reference's PuzzleDatasetMetadata (dataset.json), field for field."""

    pad_id: int
    ignore_label_id: int | None
    blank_identifier_id: int
    vocab_size: int
    seq_len: int
    num_puzzle_identifiers: int
    total_groups: int
    mean_puzzle_examples: float
    sets: list[str]

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path) -> DatasetMetadata:
        missing = [f for f in METADATA_FIELDS if f not in data]
        if missing:
            raise HrmEdgeError(f"dataset.json lacks {', '.join(missing)}", path=path)
        return cls(**{f: data[f] for f in METADATA_FIELDS})

    def to_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in METADATA_FIELDS}


@dataclass(frozen=True)
class IdentifierInfo:
    """What a puzzle identifier stands for: its task and the augmentation applied."""

    identifier: int
    name: str
    task_id: str
    augmentation: Augmentation


def parse_identifier(identifier: int, name: str) -> IdentifierInfo:
    """`"007bbfb7_t3_0417239856"` -> task `007bbfb7`, dihedral 3, colours 0417239856."""
    m = _AUG_SUFFIX.match(name)
    if m:
        return IdentifierInfo(identifier, name, m.group(1), Augmentation.from_name(m.group(2)))
    return IdentifierInfo(identifier, name, name, Augmentation.identity())


@dataclass
class SetArrays:
    """One set of a split: memory-mapped examples plus in-memory index arrays."""

    inputs: np.ndarray  # (examples, seq_len) memmap
    labels: np.ndarray  # (examples, seq_len) memmap
    puzzle_identifiers: np.ndarray  # (puzzles,)
    puzzle_indices: np.ndarray  # (puzzles + 1,) first example of each puzzle
    group_indices: np.ndarray  # (groups + 1,) first puzzle of each group

    @property
    def num_examples(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_puzzles(self) -> int:
        return int(self.puzzle_identifiers.shape[0])

    @property
    def num_groups(self) -> int:
        return int(self.group_indices.shape[0]) - 1

    @cached_property
    def example_puzzles(self) -> np.ndarray:
        """Puzzle index of every example (int32; computed on first use)."""
        sizes = np.diff(self.puzzle_indices)
        return np.repeat(np.arange(self.num_puzzles, dtype=np.int32), sizes)


@dataclass
class Puzzle:
    """One puzzle (a task or one augmented copy): its examples and identifier."""

    set_name: str
    index: int
    identifier: int
    inputs: np.ndarray
    labels: np.ndarray


@dataclass
class Batch:
    """Consecutive examples with the puzzle identifier of each (the reference's test batches)."""

    set_name: str
    inputs: np.ndarray
    labels: np.ndarray
    puzzle_identifiers: np.ndarray
    start: int


def _load(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise HrmEdgeError("missing dataset array", path=path)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise HrmEdgeError(f"not a readable .npy array ({exc})", path=path) from exc


class HrmDataset:
    """One split (`train` or `test`) of a dataset folder, memory-mapped.

    `HrmDataset(dir, "train")` validates the layout; `.sets[name]` holds the arrays,
    `.metadata` the dataset.json fields, `.identifiers` the identifier names (from
    `identifiers.json` one level up, when present).
    """

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root = Path(root)
        self.split = split
        self.dir = self.root / split
        meta_path = self.dir / "dataset.json"
        if not meta_path.is_file():
            raise HrmEdgeError(f"no {split}/dataset.json: not a dataset folder or no {split} split", path=self.root)
        try:
            data = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HrmEdgeError(f"dataset.json is not valid JSON ({exc})", path=meta_path) from exc
        self.metadata = DatasetMetadata.from_json(data, meta_path)
        self.sets: dict[str, SetArrays] = {}
        for name in self.metadata.sets:
            arrays = {
                f: _load(self.dir / f"{name}__{f}.npy", mmap=f in ("inputs", "labels")) for f in ARRAY_FIELDS
            }
            self.sets[name] = SetArrays(**arrays)
            self._check(name, self.sets[name])

    def _check(self, name: str, s: SetArrays) -> None:
        """Layout invariants; each failure names the set and what is wrong."""
        seq = self.metadata.seq_len
        where = f"{self.split}/{name}"

        def fail(msg: str) -> None:
            raise HrmEdgeError(f"{where}: {msg}", path=self.root)

        for f in ("inputs", "labels"):
            a = getattr(s, f)
            if a.ndim != 2 or a.shape[1] != seq:
                fail(f"{f} has shape {a.shape}, expected (examples, {seq})")
            if a.dtype.kind not in "iu":
                fail(f"{f} has dtype {a.dtype}, expected integer tokens")
        if s.labels.shape != s.inputs.shape:
            fail(f"labels shape {s.labels.shape} differs from inputs {s.inputs.shape}")
        for f in ("puzzle_identifiers", "puzzle_indices", "group_indices"):
            a = getattr(s, f)
            if a.ndim != 1 or a.dtype.kind not in "iu":
                fail(f"{f} must be a 1-D integer array, got {a.dtype} {a.shape}")
        pi, gi = s.puzzle_indices, s.group_indices
        if pi.size != s.puzzle_identifiers.size + 1 or pi[0] != 0 or pi[-1] != s.num_examples:
            fail("puzzle_indices do not span the examples (need puzzles + 1 entries from 0 to examples)")
        if gi.size < 1 or gi[0] != 0 or gi[-1] != s.num_puzzles:
            fail("group_indices do not span the puzzles (need groups + 1 entries from 0 to puzzles)")
        if (np.diff(pi) < 0).any() or (np.diff(gi) < 0).any():
            fail("puzzle_indices or group_indices decrease")
        ids = s.puzzle_identifiers
        if ids.size and (ids.min() < 0 or ids.max() >= self.metadata.num_puzzle_identifiers):
            fail(f"puzzle identifiers outside 0..{self.metadata.num_puzzle_identifiers - 1}")

    # ------------------------------------------------------------------ identifiers

    @cached_property
    def identifiers(self) -> list[str]:
        """Name of every puzzle identifier (index = identifier; 0 is "<blank>")."""
        path = self.root / "identifiers.json"
        if not path.is_file():
            return [f"<id {i}>" for i in range(self.metadata.num_puzzle_identifiers)]
        names = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(names, list) or len(names) != self.metadata.num_puzzle_identifiers:
            raise HrmEdgeError(
                f"identifiers.json must list {self.metadata.num_puzzle_identifiers} names", path=path
            )
        return names

    def identifier_info(self, identifier: int) -> IdentifierInfo:
        """Task and augmentation behind an identifier (parsed from its reference-style name)."""
        return parse_identifier(identifier, self.identifiers[identifier])

    # ------------------------------------------------------------------ access

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.sets.values())

    @property
    def num_puzzles(self) -> int:
        return sum(s.num_puzzles for s in self.sets.values())

    def __len__(self) -> int:
        return self.num_examples

    def puzzle(self, index: int, set_name: str | None = None) -> Puzzle:
        name = set_name or next(iter(self.sets))
        s = self.sets[name]
        lo, hi = int(s.puzzle_indices[index]), int(s.puzzle_indices[index + 1])
        return Puzzle(name, index, int(s.puzzle_identifiers[index]), s.inputs[lo:hi], s.labels[lo:hi])

    def iter_puzzles(self) -> Iterator[Puzzle]:
        for name, s in self.sets.items():
            for i in range(s.num_puzzles):
                yield self.puzzle(i, name)

    def iter_groups(self, set_name: str | None = None) -> Iterator[list[Puzzle]]:
        """Puzzles grouped by task (a group is a task and its augmented copies)."""
        name = set_name or next(iter(self.sets))
        gi = self.sets[name].group_indices
        for g in range(gi.size - 1):
            yield [self.puzzle(i, name) for i in range(int(gi[g]), int(gi[g + 1]))]

    def iter_batches(self, batch_size: int) -> Iterator[Batch]:
        """Every example once, in order, `batch_size` at a time, with its puzzle identifier.

        Evaluation order (the reference's test mode). Slices of the memory map are copied
        into RAM one batch at a time.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        for name, s in self.sets.items():
            for lo in range(0, s.num_examples, batch_size):
                hi = min(lo + batch_size, s.num_examples)
                pz = s.example_puzzles[lo:hi]
                yield Batch(
                    name,
                    np.asarray(s.inputs[lo:hi]),
                    np.asarray(s.labels[lo:hi]),
                    s.puzzle_identifiers[pz].astype(np.int32),
                    lo,
                )

    def sample_batches(self, batch_size: int, seed: int = 0, epochs: int = 1) -> Iterator[Batch]:
        """Training order as the reference samples it: shuffle groups, pick one puzzle per group,
        take up to the rest of the batch from that puzzle's examples; full batches only."""
        rng = np.random.default_rng(seed)
        for name, s in self.sets.items():
            for rows, puz in sample_batch_rows(s, rng, batch_size, epochs):
                yield Batch(name, s.inputs[rows], s.labels[rows], s.puzzle_identifiers[puz].astype(np.int32), -1)


def sample_batch_rows(s: SetArrays, rng: np.random.Generator, batch_size: int,
                      epochs: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(example rows, puzzle index of each row) of each training batch of one set, in the reference's
    order; index arithmetic only (no example is read), so a trainer can replay it to resume."""
    order = np.concatenate([rng.permutation(s.num_groups) for _ in range(epochs)])
    gi, pi = s.group_indices, s.puzzle_indices
    idx: list[np.ndarray] = []
    pzl: list[np.ndarray] = []
    size = 0
    for g in order.tolist():
        p = int(rng.integers(gi[g], gi[g + 1]))
        lo, n = int(pi[p]), int(pi[p + 1] - pi[p])
        take = min(n, batch_size - size)
        idx.append(lo + rng.choice(n, take, replace=False))
        pzl.append(np.full(take, p))
        size += take
        if size == batch_size:
            yield np.concatenate(idx), np.concatenate(pzl)
            idx, pzl, size = [], [], 0
