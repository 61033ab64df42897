"""Training logs: append-only JSON lines, a resume that drops lines past the checkpoint, the progress line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO


class JsonlLog:
    """One JSON object per line, flushed per write, so a killed run loses at most the line in flight.

    On resume from step S every record with `step > S` is dropped first: those steps will be run
    again, and the log must read as one uninterrupted run.
    """

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            keep = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if int(rec.get("step", 0)) <= resume_step:
                    keep.append(line)
            path.write_text("".join(f"{k}\n" for k in keep), encoding="utf-8")
        elif resume_step is None:
            path.write_text("", encoding="utf-8")
        self._f: TextIO = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSON-lines log (tests and tools read metrics.jsonl through this)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """A one-line report per logged step: step, losses, accuracies of halted samples, speed, ETA."""

    def __init__(self, total_steps: int, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total, self.quiet, self.stream = total_steps, quiet, stream or sys.stderr
        self.t0 = time.perf_counter()

    def line(self, rec: dict[str, Any], steps_done_here: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / max(1, steps_done_here) * (self.total - rec["step"])
        acc = ""
        if rec.get("halted"):
            acc = f" tok {rec['token_accuracy']:.3f} exact {rec['exact_accuracy']:.3f} steps {rec['mean_steps']:.2f}"
        print(f"step {rec['step']}/{self.total} loss {rec['loss']:.4f}{acc} lr {rec['lr']:.2e} "
              f"{rec['samples_per_s']:.1f} samples/s ETA {_fmt_time(eta)}", file=self.stream, flush=True)
