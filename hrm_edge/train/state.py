"""What a bit-identical resume needs beyond the weights: RNG states, the ACT carry, checkpoint files.

Everything here is stored as tensors and plain containers, so `torch.load(weights_only=True)` (the
only way hrm-edge loads a checkpoint) reads it back, and the file stays a normal hrm-edge
checkpoint that `export` and `solve` load through `model/checkpoint.py`.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_edge.model.act import ActTrainCarry

STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def capture_rng() -> dict[str, Any]:
    """Python, numpy (global) and torch (CPU and every CUDA device) generator states."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def carry_to_state(carry: ActTrainCarry) -> dict[str, Any]:
    """Which examples occupy which slots, their (z_H, z_L), segment counts and halted flags."""
    return {"z_H": carry.z_H.detach().cpu(), "z_L": carry.z_L.detach().cpu(), "steps": carry.steps.cpu(),
            "halted": carry.halted.cpu(), "data": {k: v.cpu() for k, v in carry.data.items()}}


def carry_from_state(state: dict[str, Any], device: torch.device) -> ActTrainCarry:
    return ActTrainCarry(state["z_H"].to(device), state["z_L"].to(device), state["steps"].to(device),
                         state["halted"].to(device), {k: v.to(device) for k, v in state["data"].items()})


def step_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """`step_N.pt` files of a run, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := STEP_FILE.match(p.name))]
    return sorted(found)


def prune_checkpoints(folder: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (and their sidecars)."""
    if keep_last <= 0:
        return
    for _, path in step_checkpoints(folder)[:-keep_last]:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)


def concat_carries(carries: list[ActTrainCarry]) -> ActTrainCarry | None:
    """The carry of the whole batch from its micro-batch chunks (None for no chunks)."""
    if not carries:
        return None
    return ActTrainCarry(torch.cat([c.z_H for c in carries]), torch.cat([c.z_L for c in carries]),
                         torch.cat([c.steps for c in carries]), torch.cat([c.halted for c in carries]),
                         {k: torch.cat([c.data[k] for c in carries]) for k in carries[0].data})


def split_carries(carry: ActTrainCarry | None, micro: int) -> list[ActTrainCarry]:
    """Chunks of `micro` slots, in slot order (a different micro-batch keeps every slot's state)."""
    if carry is None:
        return []
    n = carry.steps.shape[0]
    return [ActTrainCarry(carry.z_H[i:i + micro], carry.z_L[i:i + micro], carry.steps[i:i + micro],
                          carry.halted[i:i + micro], {k: v[i:i + micro] for k, v in carry.data.items()})
            for i in range(0, n, micro)]


def remove_stale_temps(out: Path) -> list[Path]:
    """Delete the temp files of atomic writes (`.NAME.XXXX.tmp`, fileio.atomic_write_bytes) that a kill -9
    left in a run folder or its checkpoints/; only a dead run leaves them, and a resume starts after it."""
    gone = []
    for folder in (out, out / "checkpoints"):
        for p in folder.glob(".*.tmp") if folder.is_dir() else []:
            if p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p)
    return gone
