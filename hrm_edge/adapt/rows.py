"""Puzzle rows for the adapted tasks: the base checkpoint's names, and new rows appended for the new names alone.

A new row starts where each reference starts a puzzle it has not trained: ACT v1 (hrm-edge's `--init-from`)
at the mean of the trained rows 1.. (row 0, the blank puzzle, is never trained); TRM at the mean of all its
rows, blank included (TinyRecursiveModels `load_checkpoint`: `torch.mean(puzzle_emb, dim=0)`). Unlike
`train --init-from`, the base rows are kept as they are and only the adaptation's names get rows, so the
table grows by the new tasks' copies and nothing else. A name the table already holds keeps its row, so
adapting an adapted checkpoint again on the same tasks (and seed) continues those rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hrm_edge.data.identifiers import names_by_row, parse_identifiers, read_identifiers
from hrm_edge.errors import HrmEdgeError


def base_names(ckpt: Path, train_state: dict[str, Any] | None, rows: int) -> list[str]:
    """The name of every row of the checkpoint's table ("" where unknown; row 0 is `<blank>`).

    Found where export and solve look: train_state `identifiers`, its `data_dir` or training config's `data`
    folder (identifiers.json), identifiers.json beside the checkpoint."""
    ts = train_state if isinstance(train_state, dict) else {}
    index = None
    if isinstance(ts.get("identifiers"), list):
        index = parse_identifiers(ts["identifiers"], f"{ckpt}: train_state identifiers")
    folders = [ts.get("data_dir"), (ts.get("config") or {}).get("data") if isinstance(ts.get("config"), dict)
               else None, str(ckpt.parent)]
    for folder in folders:
        if index is None and isinstance(folder, str) and (Path(folder) / "identifiers.json").is_file():
            index = read_identifiers(folder)
    by_row = names_by_row(index) if index else []
    names = [(by_row[i] if i < len(by_row) and by_row[i] else "") for i in range(rows)]
    if rows:
        names[0] = "<blank>"
    return names


def new_row_value(table: torch.Tensor, family: str) -> torch.Tensor:
    """The starting vector of an untrained puzzle, as the family's reference computes it."""
    if family == "trm":
        return table.mean(0)
    return table[1:].mean(0) if table.shape[0] > 1 else torch.zeros_like(table[0])


def append_rows(model: Any, names: list[str], table_names: list[str]) -> tuple[list[int], int]:
    """Rows for `names` in `model`'s table: existing names keep theirs, the others are appended at the
    family's start value. Returns (row of each name, rows appended); `table_names` is extended in place."""
    if model.config.puzzle_emb_ndim == 0:
        raise HrmEdgeError("this model has no puzzle embedding rows to adapt (lite); use --mode full")
    w = model.puzzle_emb.weights
    where = {n: i for i, n in enumerate(table_names) if n and n != "<blank>"}
    new = [n for n in dict.fromkeys(names) if n not in where]
    if new:
        start = new_row_value(w.data, model.config.family)
        grown = torch.cat([w.data, start.expand(len(new), -1).to(w.dtype)])
        model.puzzle_emb.weights = torch.nn.Parameter(grown, requires_grad=w.requires_grad)
        model.config.num_puzzle_identifiers = int(grown.shape[0])
        for n in new:
            where[n] = len(table_names)
            table_names.append(n)
    return [where[n] for n in names], len(new)
