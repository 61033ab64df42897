"""What the ACT trainer (`trainer.py`) and the lite trainer (`lite.py`) share, below both of them.

The stop flag SIGINT/SIGTERM set, the dataset fingerprint a resume checks, the fixed evaluation subset
and the key `best.pt` follows: one copy each, so the two loops stop, resume and select alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError


def data_fingerprint(root: Path) -> str:
    """sha256 over the splits' dataset.json, identifiers.json and array shapes (cheap; no example read)."""
    h = hashlib.sha256()
    for p in sorted([*root.glob("*/dataset.json"), root / "identifiers.json"]):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    for p in sorted(root.glob("*/*.npy")):
        h.update(f"{p.relative_to(root).as_posix()}:{p.stat().st_size}".encode())
    return h.hexdigest()


def eval_subset(ds: HrmDataset, n: int, seed: int) -> dict[str, np.ndarray]:
    """A fixed random subset of n examples (the same at every evaluation and after a resume)."""
    rng = np.random.default_rng([seed, 7919])
    total = ds.num_examples
    pick = np.sort(rng.choice(total, min(n, total), replace=False))
    out, base = {}, 0
    for name, s in ds.sets.items():
        sel = pick[(pick >= base) & (pick < base + s.num_examples)] - base
        if sel.size:
            out[name] = sel
        base += s.num_examples
    return out


def eval_split(root: str | Path, wanted: str) -> str | None:
    """The split evaluations and best.pt read: `val` (a demonstration pair per task held out of training by
    `build-data --validation`) when asked for or, under "auto", when the dataset has it; else `test`; None when
    the chosen split is absent (no evaluation). Choosing on val/ keeps the test pairs for one final report."""
    root = Path(root)
    has = {s: (root / s / "dataset.json").is_file() for s in ("val", "test")}
    name = ("val" if has["val"] else "test") if wanted == "auto" else wanted
    if wanted == "val" and not has["val"]:
        raise HrmEdgeError("--eval-split val: the dataset has no val/ split (build it with --validation)",
                           path=root)
    return name if has[name] else None


def best_key(ev: dict[str, float]) -> tuple[float, float]:
    """best.pt follows exact accuracy, ties broken by non-PAD token accuracy."""
    return (ev["exact_accuracy"], ev["token_accuracy"])


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop finishes its step, saves, and returns."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers, no graceful stop
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
