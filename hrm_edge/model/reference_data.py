"""What a reference run's `all_config.yaml` says about its dataset: the canvas its checkpoint was trained on.

The references take seq_len from their dataset, never from `arch:`, so a checkpoint with RoPE or no position
encoding (and attention) stores no sequence length. Its run's config names the data (`data_path:` in
sapientinc/HRM, `data_paths:` in TinyRecursiveModels); that dataset's `dataset.json` holds seq_len when the
folder is here (relative paths are tried from the working folder and from the checkpoint's folder up to the
reference repository's root: checkpoints/<project>/<run>/step_N). Otherwise the references' own builders
fix the canvas by dataset kind: Sudoku 9x9 (81 tokens), Maze NxN (named `maze-30x30-...`), ARC 30x30.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from hrm_edge.fileio import read_json


def data_paths(config: dict[str, Any] | None) -> list[str]:
    """The dataset folders a reference run trained on, as its all_config.yaml names them."""
    if not isinstance(config, dict):
        return []
    found = config.get("data_paths") or config.get("data_path") or []
    return [str(p) for p in ([found] if isinstance(found, str) else found)]


def _square(seq_len: Any) -> int | None:
    side = math.isqrt(int(seq_len)) if isinstance(seq_len, int) and seq_len > 0 else 0
    return side if side and side * side == seq_len else None


def canvas_from_data_path(config: dict[str, Any] | None, folder: Path) -> tuple[int, str] | None:
    """(canvas, how it was found) from the run's data path, or None when it does not say."""
    for dp in data_paths(config):
        p = Path(dp)
        bases = [p] if p.is_absolute() else [Path.cwd() / p, *(a / p for a in [folder, *list(folder.parents)[:3]])]
        for base in bases:
            for split in ("train", "test"):
                meta = base / split / "dataset.json"
                if meta.is_file():
                    side = _square(read_json(meta, "reference dataset.json").get("seq_len"))
                    if side:
                        return side, f"canvas {side}x{side} from {meta} (all_config.yaml's data path)"
        name = p.name.lower()
        nxn = re.search(r"(\d+)x(\d+)", name)
        if "sudoku" in name:
            return 9, f"canvas 9x9 from the data path's name {dp!r} (the references' Sudoku builder: 81 tokens)"
        if nxn and nxn.group(1) == nxn.group(2):
            side = int(nxn.group(1))
            return side, f"canvas {side}x{side} from the data path's name {dp!r}"
        if "arc" in name:
            return 30, f"canvas 30x30 from the data path's name {dp!r} (the references' ARC builder)"
    return None
