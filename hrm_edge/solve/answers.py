"""What solving decided for one test input: its attempts, the ranked candidates they came from, and whether
they are right. Made by solver.decide; read by submission.py, render.py, compare and the demo (here, below
them all, so the submission writer and the solver do not import each other).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hrm_edge.solve.vote import Ranked


@dataclass
class TestAnswer:
    task_id: str
    test_index: int
    attempts: list[np.ndarray]
    ranked: list[Ranked]
    n_candidates: int
    n_undecodable: int
    solution: np.ndarray | None
    correct: list[bool] | None = None  # per attempt, where the solution is known

    @property
    def fallback(self) -> bool:
        """No augmented copy decoded to a grid: the attempts are the 1x1 placeholder."""
        return not self.ranked


__all__ = ["TestAnswer"]
