"""Task augmentations with exact inverses: dihedral transforms, colour permutations, translation.

Conventions follow the HRM reference (dataset/common.py, dataset/build_arc_dataset.py) so
identifiers and predictions move between the two without translation tables:

- dihedral ids 0..7 = identity, rot90, rot180, rot270, fliplr, flipud, transpose,
  anti-transpose, where rot90 is numpy's (counter-clockwise) `np.rot90(grid, 1)` and
  anti-transpose is `fliplr(rot90(grid))`; the inverse of k is `DIHEDRAL_INVERSE[k]`;
- a colour permutation `colors` maps colour c to `colors[c]` and keeps 0 (the background)
  fixed; it is applied before the dihedral transform (the two commute);
- the name of an augmentation is the reference's `t{k}_{colors as 10 digits}`, so a puzzle
  identifier `"{task}_{name}"` reads back to (task, transform);
- translation is an offset of the grid inside the token canvas; it changes where tokens sit,
  not the grid, so it lives in encoding (`encode` / `decode`) rather than in `apply`.

One `Augmentation` is applied to every pair of a task, so the task's rule is transformed
consistently (a rotated task is still a task).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from hrm_edge.data.tokens import DEFAULT_CANVAS, NUM_COLORS, decode_grid, encode_grid

if TYPE_CHECKING:
    from hrm_edge.data.arc import ArcTask

DIHEDRAL_NAMES = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "fliplr",
    "flipud",
    "transpose",
    "anti-transpose",
)
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
IDENTITY_COLORS = tuple(range(NUM_COLORS))
_NAME_RE = re.compile(r"^t([0-7])_([0-9]{10})(?:_o(\d+)x(\d+))?$")


def dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Dihedral transform `k` (reference id order) of the last two axes of `grid`."""
    a = np.asarray(grid)
    if k == 0:
        return a
    if k == 1:
        return np.rot90(a, 1, axes=(-2, -1))
    if k == 2:
        return np.rot90(a, 2, axes=(-2, -1))
    if k == 3:
        return np.rot90(a, 3, axes=(-2, -1))
    if k == 4:
        return np.flip(a, axis=-1)
    if k == 5:
        return np.flip(a, axis=-2)
    if k == 6:
        return np.swapaxes(a, -1, -2)
    if k == 7:
        return np.flip(np.rot90(a, 1, axes=(-2, -1)), axis=-1)
    raise ValueError(f"dihedral id must be 0..7, got {k}")


def inverse_dihedral(grid: np.ndarray, k: int) -> np.ndarray:
    """Undo `dihedral(grid, k)`."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral id must be 0..7, got {k}")
    return dihedral(grid, DIHEDRAL_INVERSE[k])


def dihedral_index(h: int, w: int, k: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Gather indices of transform `k` on an h x w grid: `dihedral(g, k).ravel() == g.ravel()[idx]`.

    The builder transforms thousands of copies of a task with one gather per copy instead of
    calling numpy per grid; this is the table it gathers with.
    """
    moved = dihedral(np.arange(h * w, dtype=np.int64).reshape(h, w), k)
    return np.ascontiguousarray(moved).ravel(), (int(moved.shape[0]), int(moved.shape[1]))


def _check_colors(colors: tuple[int, ...]) -> None:
    if len(colors) != NUM_COLORS or sorted(colors) != list(range(NUM_COLORS)):
        raise ValueError(f"colors must be a permutation of 0..9, got {colors}")
    if colors[0] != 0:
        raise ValueError(f"colour 0 (background) must stay fixed, got colors[0] = {colors[0]}")


@dataclass(frozen=True)
class Augmentation:
    """One task-wide transform: dihedral id, colour permutation (0 fixed) and canvas offset."""

    dihedral: int = 0
    colors: tuple[int, ...] = field(default=IDENTITY_COLORS)
    offset: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dihedral", int(self.dihedral))
        object.__setattr__(self, "colors", tuple(int(c) for c in self.colors))
        object.__setattr__(self, "offset", (int(self.offset[0]), int(self.offset[1])))
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral id must be 0..7, got {self.dihedral}")
        _check_colors(self.colors)
        if self.offset[0] < 0 or self.offset[1] < 0:
            raise ValueError(f"offset must be non-negative, got {self.offset}")

    @classmethod
    def identity(cls) -> Augmentation:
        return cls()

    @property
    def is_identity(self) -> bool:
        return self.dihedral == 0 and self.colors == IDENTITY_COLORS and self.offset == (0, 0)

    @property
    def name(self) -> str:
        """Stable text form, the reference's `t{k}_{digits}` (plus `_o{r}x{c}` when translated)."""
        base = f"t{self.dihedral}_{''.join(str(c) for c in self.colors)}"
        return base if self.offset == (0, 0) else f"{base}_o{self.offset[0]}x{self.offset[1]}"

    @classmethod
    def from_name(cls, name: str) -> Augmentation:
        m = _NAME_RE.match(name)
        if not m:
            raise ValueError(f"not an augmentation name: {name!r} (expected t<k>_<10 digits>[_o<r>x<c>])")
        off = (int(m.group(3)), int(m.group(4))) if m.group(3) is not None else (0, 0)
        return cls(int(m.group(1)), tuple(int(ch) for ch in m.group(2)), off)

    def to_dict(self) -> dict[str, Any]:
        return {"dihedral": self.dihedral, "colors": list(self.colors), "offset": list(self.offset)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augmentation:
        return cls(int(d["dihedral"]), tuple(d["colors"]), tuple(d.get("offset", (0, 0))))

    @property
    def inverse_colors(self) -> tuple[int, ...]:
        inv = [0] * NUM_COLORS
        for src, dst in enumerate(self.colors):
            inv[dst] = src
        return tuple(inv)

    def apply(self, grid: np.ndarray) -> np.ndarray:
        """Transform a grid: colours through the permutation, then the dihedral transform."""
        g = np.asarray(grid)
        return dihedral(np.asarray(self.colors, dtype=g.dtype)[g], self.dihedral)

    def invert(self, grid: np.ndarray) -> np.ndarray:
        """Undo `apply` (e.g. on a predicted grid): inverse dihedral, then inverse colours."""
        g = np.asarray(grid)
        return np.asarray(self.inverse_colors, dtype=g.dtype)[inverse_dihedral(g, self.dihedral)]

    def without_offset(self) -> Augmentation:
        return replace(self, offset=(0, 0))

    def fits(self, shapes: list[tuple[int, int]], canvas: int = DEFAULT_CANVAS) -> bool:
        """Whether every (untransformed) grid shape still fits the canvas at this offset."""
        for h, w in shapes:
            th, tw = (w, h) if self.dihedral in (1, 3, 6, 7) else (h, w)
            if self.offset[0] + th > canvas or self.offset[1] + tw > canvas:
                return False
        return True

    def encode(self, grid: np.ndarray, canvas: int = DEFAULT_CANVAS) -> np.ndarray:
        """Transform a grid and lay it on the canvas at this offset."""
        return encode_grid(self.apply(grid), canvas, offset=self.offset)

    def decode(self, seq: np.ndarray, canvas: int = DEFAULT_CANVAS) -> np.ndarray | None:
        """Inverse of `encode` for a (predicted) sequence; None when it holds no grid."""
        g = decode_grid(seq, canvas, offset=self.offset)
        return None if g is None else self.invert(g)

    def apply_task(self, task: ArcTask, canvas: int = DEFAULT_CANVAS) -> ArcTask:
        """The same transform on every grid of a task (offset checked against all of them)."""
        from hrm_edge.data.arc import ArcPair, ArcTask

        if not self.fits(task.shapes(), canvas):
            raise ValueError(f"offset {self.offset} does not fit task {task.id} on a {canvas} canvas")

        def pair(p: ArcPair) -> ArcPair:
            return ArcPair(self.apply(p.input), None if p.output is None else self.apply(p.output))

        return ArcTask(
            id=f"{task.id}_{self.name}" if not self.is_identity else task.id,
            train=[pair(p) for p in task.train],
            test=[pair(p) for p in task.test],
            source=task.source,
            split=task.split,
        )

    def invert_task(self, task: ArcTask) -> ArcTask:
        """Undo `apply_task` on the grids (the id is left as it is)."""
        from hrm_edge.data.arc import ArcPair, ArcTask

        def pair(p: ArcPair) -> ArcPair:
            return ArcPair(self.invert(p.input), None if p.output is None else self.invert(p.output))

        return ArcTask(task.id, [pair(p) for p in task.train], [pair(p) for p in task.test], task.source, task.split)


def random_colors(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random colour permutations keeping 0 fixed, as an (n, 10) uint8 array (vectorised)."""
    perms = rng.permuted(np.tile(np.arange(1, NUM_COLORS, dtype=np.uint8), (n, 1)), axis=1)
    return np.concatenate([np.zeros((n, 1), dtype=np.uint8), perms], axis=1)


def random_augmentations(
    rng: np.random.Generator, n: int, include_identity: bool = True
) -> list[Augmentation]:
    """n distinct augmentations (dihedral x colour permutation), identity first if asked.

    Distinct as transforms; two distinct transforms can still give the same task (a task
    with symmetric grids or few colours), which the builder deduplicates by content.
    """
    total = 8 * 362880  # 8 dihedral ids x 9! permutations of colours 1..9
    if n > total:
        raise ValueError(f"only {total} distinct augmentations exist, asked for {n}")
    out: list[Augmentation] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    if include_identity and n > 0:
        out.append(Augmentation.identity())
        seen.add((0, IDENTITY_COLORS))
    while len(out) < n:
        k = n - len(out)
        ds = rng.integers(0, 8, size=k)
        cs = random_colors(rng, k)
        for d, c in zip(ds.tolist(), cs.tolist()):
            key = (d, tuple(c))
            if key not in seen and len(out) < n:
                seen.add(key)
                out.append(Augmentation(d, key[1]))
    return out


def random_offset(
    rng: np.random.Generator, shapes: list[tuple[int, int]], canvas: int = DEFAULT_CANVAS
) -> tuple[int, int]:
    """A uniform offset at which every one of `shapes` fits the canvas (the reference's rule)."""
    hmax = max(h for h, _ in shapes)
    wmax = max(w for _, w in shapes)
    return int(rng.integers(0, canvas - hmax + 1)), int(rng.integers(0, canvas - wmax + 1))
