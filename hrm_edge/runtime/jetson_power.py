"""Jetson power during a run: `tegrastats` sampled in the background, parsed into per-rail milliwatts.

tegrastats prints one line per interval; its power rails are `NAME current/average`, and the layout
differs by board and release:
- Orin Nano / Orin NX: `VDD_IN`, `VDD_CPU_GPU_CV`, `VDD_SOC` (VDD_IN is the whole module's input);
- AGX Orin: `VDD_GPU_SOC`, `VDD_CPU_CV`, `VIN_SYS_5V0`, `VDDQ_VDD2_1V8AO`, ... (no single input rail:
  the total is the sum of the rails, as jtop reports it);
- JetPack 6 writes `4969mW/4969mW` after a date and time; JetPack 5 on Xavier writes `3867/3867`.
The *current* value of each sample is used (tegrastats' own average runs since it started). Energy per
puzzle is mean total power x wall time / puzzles (mW x s = mJ).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hrm_edge.errors import MissingDependencyError

_RAIL = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
TOTAL_RAIL = "VDD_IN"


def parse_rails(line: str) -> dict[str, int]:
    """Current milliwatts of every power rail on one tegrastats line (RAM/SWAP `a/bMB` are not rails)."""
    return {m.group(1): int(m.group(2)) for m in _RAIL.finditer(line)}


def total_mw(rails: dict[str, int]) -> int:
    """Module power: VDD_IN where the board has it (Orin Nano/NX, Xavier NX), else the sum of the rails."""
    return rails[TOTAL_RAIL] if TOTAL_RAIL in rails else sum(rails.values())


@dataclass
class PowerReport:
    rails_mean_mw: dict[str, float]
    total_mean_mw: float
    total_rule: str
    samples: int
    seconds: float
    energy_mj: float
    energy_per_puzzle_mj: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def summarize(lines: list[str], seconds: float, puzzles: int | None = None) -> PowerReport:
    """Mean power per rail over the sampled lines, and energy over `seconds` (per puzzle when given)."""
    samples = [r for r in (parse_rails(x) for x in lines) if r]
    if not samples:
        raise MissingDependencyError("tegrastats printed no power rails during the run (too short a run for its "
                                     "interval, or a board without power monitors)")
    names = sorted({k for s in samples for k in s})
    means = {k: sum(s.get(k, 0) for s in samples) / len(samples) for k in names}
    total = sum(total_mw(s) for s in samples) / len(samples)
    energy = total * seconds
    rule = TOTAL_RAIL if all(TOTAL_RAIL in s for s in samples) else "sum of rails"
    return PowerReport(means, total, rule, len(samples), seconds, energy,
                       energy / puzzles if puzzles else None)


def require_tegrastats() -> str:
    """Path of tegrastats, or the one-line error `bench --power` gives off a Jetson."""
    path = shutil.which("tegrastats")
    if path is None:
        raise MissingDependencyError("--power needs tegrastats (part of L4T on a Jetson); it is not on PATH here")
    return path


@dataclass
class TegrastatsSampler:
    """`with TegrastatsSampler() as s: ...run...` then `s.report(puzzles)`; the process is ended on exit."""

    interval_ms: int = 100
    command: list[str] | None = None  # default: [tegrastats, --interval, N]
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __enter__(self) -> TegrastatsSampler:
        cmd = self.command or [require_tegrastats(), "--interval", str(self.interval_ms)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._t0 = time.perf_counter()
        return self

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.strip())

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)

    def report(self, puzzles: int | None = None) -> PowerReport:
        return summarize(self.lines, self.seconds, puzzles)
