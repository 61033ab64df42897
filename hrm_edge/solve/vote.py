"""Voting over augmented predictions: identical grids pool their votes.

Each augmented copy of a test input yields (after decoding and inverting the augmentation) at
most one candidate grid and the q_halt logit of the segment it stopped at. Candidates are
grouped by exact content (shape and cells), ranked by vote count, and ties are broken by the
group's mean q_halt (the model's own confidence that it is done); a remaining tie keeps the
order in which the grids were first seen, so the result is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Candidate:
    """One decoded, inverted prediction and the q_halt logit it was produced with."""

    grid: np.ndarray
    q_halt: float
    source: str = ""  # e.g. the augmentation's name, for reports


@dataclass
class Ranked:
    """A distinct grid with its votes."""

    grid: np.ndarray
    count: int
    mean_q_halt: float
    sources: list[str] = field(default_factory=list)


def grid_key(grid: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    g = np.ascontiguousarray(np.asarray(grid, dtype=np.uint8))
    return g.shape, g.tobytes()


def vote(candidates: list[Candidate]) -> list[Ranked]:
    """Distinct grids, best first: most votes, then highest mean q_halt, then first seen."""
    groups: dict[tuple[tuple[int, ...], bytes], list[Candidate]] = {}
    for c in candidates:
        groups.setdefault(grid_key(c.grid), []).append(c)
    ranked = [
        Ranked(np.asarray(cs[0].grid, dtype=np.uint8), len(cs), float(np.mean([c.q_halt for c in cs])),
               [c.source for c in cs])
        for cs in groups.values()
    ]
    order = sorted(range(len(ranked)), key=lambda i: (-ranked[i].count, -ranked[i].mean_q_halt, i))
    return [ranked[i] for i in order]


def attempts_from(ranked: list[Ranked], k: int, fallback: np.ndarray | None = None) -> list[np.ndarray]:
    """The top `k` grids; when fewer distinct grids exist the list is padded.

    Padding repeats the best grid (a duplicate attempt costs nothing), or uses `fallback`
    (default: a 1x1 background grid) when no prediction could be decoded at all, because the
    submission format needs a grid for every attempt.
    """
    out = [r.grid for r in ranked[:k]]
    if not out:
        out = [np.zeros((1, 1), np.uint8) if fallback is None else np.asarray(fallback, np.uint8)]
    while len(out) < k:
        out.append(out[0])
    return out
