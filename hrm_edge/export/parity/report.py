"""What the ladder reports: one result per level, the whole report, the error that refuses a bundle,
and the tolerances every level shares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError

BASE_TOL = {"fp32": 1e-4, "fp16": 1e-4, "int8": 1e-4, "int8-qdq": 1e-4}  # near-tie margin and fp32 gate
FLOOR_FACTOR = 8.0  # see the package docstring (__init__.py): a runtime up to 7x less exact than PyTorch fp32, + 1
DEFAULT_L4_SOURCE = "arc-agi-1/evaluation"
Log = Callable[[str], None]


@dataclass
class LevelResult:
    level: str
    ok: bool
    summary: str
    worst_tensor: str | None = None
    worst: float | None = None
    tolerance: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ParityReport:
    precision: str
    levels: list[LevelResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(lv.ok for lv in self.levels)

    @property
    def failed(self) -> LevelResult | None:
        return next((lv for lv in self.levels if not lv.ok), None)

    def level(self, name: str) -> LevelResult | None:
        return next((lv for lv in self.levels if lv.level == name), None)

    def to_dict(self) -> dict[str, Any]:
        f = self.failed
        return {"ok": self.ok, "precision": self.precision, "failed_level": f.level if f else None,
                "worst_tensor": f.worst_tensor if f else None, "levels": {lv.level: lv.to_dict() for lv in self.levels}}

    def message(self) -> str:
        f = self.failed
        if f is None:
            return "parity: all levels passed"
        worst = f" worst tensor {f.worst_tensor}" if f.worst_tensor else ""
        val = f" (|Δ| {f.worst:.3g} > tol {f.tolerance:.3g})" if f.worst is not None and f.tolerance else ""
        return f"parity {f.level} failed:{worst}{val}: {f.summary}"


class ParityError(HrmEdgeError):
    """The bundle did not prove equal to PyTorch; nothing was written."""

    exit_code = 3

    def __init__(self, report: ParityReport, path: str | Path | None = None) -> None:
        self.report = report
        super().__init__(report.message() + "; no bundle written", path)
