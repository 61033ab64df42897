"""`export --update-puzzles`: an adapted checkpoint's puzzle table and identifiers into an existing bundle.

The puzzle table is an input of the graph, never baked into it (DESIGN), so new tasks learned by
`hrm-edge adapt --mode embedding` need no new graph and no engine rebuild: the bundle's `puzzle_emb.npy` and
`puzzle_index.json` are replaced and nothing else. The whole bundle is staged beside itself (model files
hard-linked where the filesystem allows, else copied), the parity ladder runs on the staged folder against
the adapted checkpoint, and only a passing bundle replaces the old one. L2 is what refuses a checkpoint
whose dense weights differ from the graph's (a `--mode full` adaptation: re-export it, or refit an engine).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_edge.data.identifiers import names_by_row, parse_identifiers
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import StagedDir


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def update_puzzles(bundle: str | Path, ckpt: str | Path, *, l4_source: str | None = None, l4_puzzles: int = 4,
                   l3_batches: tuple[int, ...] | None = None, log: Callable[[str], None] | None = None) -> Any:
    """Replace the bundle's puzzle table with `ckpt`'s (ladder-checked, atomic); returns the ExportResult-like
    (path, manifest, report). Raises ParityError (bundle untouched) when the checkpoint's graph weights differ."""
    import hrm_edge.export.bundle as bd
    from hrm_edge.config import config_to_dict
    from hrm_edge.export.onnx import prepare
    from hrm_edge.export.parity import DEFAULT_L4_SOURCE, ParityError, run_ladder
    from hrm_edge.export.pipeline import DEFAULT_L3_BATCHES, ExportResult
    from hrm_edge.model.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    bundle, ckpt = Path(bundle), Path(ckpt)
    manifest = bd.read_manifest(bundle)
    pe = manifest.get("puzzle_emb")
    if not pe:
        raise HrmEdgeError("this bundle's model has no puzzle table to update (lite, or exported without one)",
                           bundle)
    ck = load_checkpoint(ckpt)
    table = getattr(getattr(ck.model, "puzzle_emb", None), "weights", None)
    if table is None or int(ck.config.puzzle_emb_ndim) != int(pe["shape"][1]):
        raise HrmEdgeError(f"its puzzle rows ({getattr(ck.config, 'puzzle_emb_ndim', 0)} wide) do not fit the "
                           f"bundle's ({pe['shape'][1]} wide)", ckpt)
    ts = ck.train_state if isinstance(ck.train_state, dict) else {}
    names = names_by_row(parse_identifiers(ts["identifiers"], f"{ckpt}: train_state identifiers")) \
        if isinstance(ts.get("identifiers"), list) else None
    keep = {bd.PUZZLE_FILE, bd.INDEX_FILE, "manifest.json"}
    with StagedDir(bundle) as staged:
        for f in bundle.iterdir():
            if f.name not in keep and f.is_file():
                _link_or_copy(f, staged.dir / f.name)
        puzzle = bd.write_puzzle_table(staged.dir, table.detach().float().cpu().numpy(), names, pe.get("dtype",
                                                                                                      "float16"))
        new = dict(manifest)
        new["puzzle_emb"] = puzzle
        new["config"] = config_to_dict(ck.config)
        new["source"] = {"path": str(ckpt.resolve()), "sha256": ck.sha256, "format": ck.source_format,
                         "puzzles_updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "graph_source": manifest.get("source")}
        new.pop("parity", None)
        bd.write_manifest(staged.dir, new)
        report = run_ladder(bundle=staged.dir, manifest=new, torch_model=prepare(ck.model),
                            target=new.get("target") or "ort",
                            l3_batches=l3_batches or ((manifest["batch"],) if isinstance(manifest.get("batch"), int)
                                                      else DEFAULT_L3_BATCHES),
                            l4_source=DEFAULT_L4_SOURCE if l4_source is None else l4_source, l4_puzzles=l4_puzzles,
                            log=log)
        new["parity"] = report.to_dict()
        bd.write_manifest(staged.dir, new)
        if not report.ok:
            raise ParityError(report, path=bundle)
        path = staged.commit()
    return ExportResult(path, new, report, 0.0, time.perf_counter() - t0)
