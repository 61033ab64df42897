"""Training logs: append-only JSON lines, a resume that drops lines past the checkpoint, the progress line and
bars, and the optional TensorBoard / W&B trackers."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from hrm_edge.errors import HrmEdgeError


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


@contextlib.contextmanager
def eval_bar(label: str, total: int, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for one evaluation pass (samples done / total); nothing when quiet."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = Console(stderr=True)
    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("samples"), TimeElapsedColumn(),
                    console=con, transient=True, disable=quiet or not con.is_terminal)  # logs get the result line
    with prog:
        tid = prog.add_task(label, total=total)
        yield lambda n: prog.advance(tid, n)


TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def check_trackers(tensorboard: bool, wandb: bool) -> None:
    """Fail before any work when a requested tracker's package is missing (they are the `track` extra)."""
    import importlib.util

    for name, on in (("tensorboard", tensorboard), ("wandb", wandb)):
        if on and importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
            raise HrmEdgeError(f"--{name} needs the {name} package: pip install 'hrm-edge[track]'")


class Trackers:
    """TensorBoard and W&B (offline, files in the run folder) beside metrics.jsonl, when asked.

    Scalars are logged under `train/`, `eval/` and `full/`. On resume from step S TensorBoard drops its
    events past S (`purge_step`) and the W&B run continues under the same id, so both read as one run.
    """

    def __init__(self, out: Path, tensorboard: bool, wandb: bool, config: dict[str, Any],
                 resume_step: int | None) -> None:
        check_trackers(tensorboard, wandb)
        self.tb: Any = None
        self.wb: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(out / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step is not None else None)
        if wandb:
            import os
            import secrets

            import wandb as wb

            os.environ.setdefault("WANDB_SILENT", "true")
            run_id = (out / "wandb_id.txt").read_text().strip() if (out / "wandb_id.txt").is_file() else None
            if run_id is None:
                run_id = secrets.token_hex(4)  # not the random module: the training RNG stream stays untouched
                (out / "wandb_id.txt").write_text(run_id + "\n", encoding="utf-8")
            self.wb = wb.init(mode="offline", dir=str(out), project="hrm-edge", name=out.name, id=run_id,
                              resume="allow", config=config)

    def log(self, prefix: str, rec: dict[str, Any]) -> None:
        step = int(rec["step"])
        vals = {f"{prefix}/{k}": float(v) for k, v in rec.items()
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tb is not None:
            for k, v in vals.items():
                self.tb.add_scalar(k, v, step)
        if self.wb is not None:
            self.wb.log(vals, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


TIMING_KEYS = ("samples_per_s", "data_s", "forward_s", "backward_s", "optimizer_s", "compute_s", "mem_mb")


def peak_memory_mb(device: Any) -> float:
    """Peak memory so far: CUDA's max allocated on a GPU, else the process's peak resident set (Linux KB)."""
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StepTimes:
    """Seconds per phase of a training step (data wait, forward, backward, optimizer), summed over a log window.

    `start()` at the top of a step, `mark(phase)` at the end of each phase (a phase may be marked several
    times per step: gradient accumulation). On CUDA every mark synchronizes the device first, so each
    phase is charged its own kernels; that costs a little overlap and is what makes the split true.
    """

    PHASES = ("data_s", "forward_s", "backward_s", "optimizer_s")

    def __init__(self, device: Any) -> None:
        self.device = device
        self.cuda = getattr(device, "type", "cpu") == "cuda"
        self.reset()

    def reset(self) -> None:
        self.sums = dict.fromkeys(self.PHASES, 0.0)
        self.steps = 0
        self._t = time.perf_counter()

    def _now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        self._t = self._now()

    def mark(self, phase: str) -> None:
        now = self._now()
        self.sums[phase] += now - self._t
        self._t = now

    def end_step(self) -> None:
        self.steps += 1

    def record(self) -> dict[str, float]:
        """Mean seconds per step of each phase, their compute sum, and the peak memory (MB)."""
        n = max(1, self.steps)
        rec = {k: v / n for k, v in self.sums.items()}
        rec["compute_s"] = rec["forward_s"] + rec["backward_s"] + rec["optimizer_s"]
        rec["mem_mb"] = peak_memory_mb(self.device)
        return rec
