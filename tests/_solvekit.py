"""Helpers for the solve / compare tests: small-canvas checkpoints and folders of real ARC tasks."""

from __future__ import annotations

import json
from pathlib import Path

from hrm_edge.config import preset
from hrm_edge.data.arc import ArcTask, load_tasks
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import save_checkpoint


def small_checkpoint(path: Path, name: str = "tiny", canvas: int = 10, seed: int = 0) -> Path:
    """A randomly initialised preset on a small canvas (a 10x10 canvas is ~80x cheaper than 30x30)."""
    cfg = preset(name)
    cfg.canvas = canvas
    model = build_model(cfg, seed=seed)
    if cfg.family == "act-v1":
        import torch

        with torch.no_grad():  # random rows, so the puzzle-vector input path is exercised
            model.puzzle_emb.weights.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
    return save_checkpoint(path, model, train_state={"step": 0, "seed": seed})


def small_real_tasks(n: int, max_side: int = 9, split: str = "arc-agi-1/evaluation") -> list[ArcTask]:
    """The first n tasks of a real ARC set whose grids all fit max_side x max_side."""
    out = []
    for t in load_tasks(split).tasks:
        if all(h <= max_side and w <= max_side for h, w in t.shapes()):
            out.append(t)
            if len(out) == n:
                break
    return out


def write_tasks(folder: Path, tasks: list[ArcTask]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        (folder / f"{t.id}.json").write_text(json.dumps(t.to_json()))
    return folder


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_inprocess(*args: str) -> Result:
    """`hrm-edge ARGS` through the real entry point (`cli.main`), in this process (no torch re-import).

    Exit codes and the one-line error mapping are the same code path as the console script; the
    subprocess form (conftest's `cli`) is used where process-level behaviour matters.
    """
    import contextlib
    import io
    import sys

    from hrm_edge import cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["hrm-edge", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return Result(code, out.getvalue(), err.getvalue())
