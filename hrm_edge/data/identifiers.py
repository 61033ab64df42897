"""Puzzle identifier names: `identifiers.json` as the reference builder (and `build-data`) write it.

One reader for every room: the export names the rows of its puzzle table with it, the solver looks
up the row of a task+augmentation. Row 0 is the blank puzzle and never a name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import read_json

BLANK_NAMES = ("<blank>", "")


def parse_identifiers(obj: Any, where: str | Path | None = None) -> dict[str, int]:
    """A name -> row dict from the reference's list form or a dict form."""
    if isinstance(obj, dict) and "identifiers" in obj and not all(isinstance(v, int) for v in obj.values()):
        obj = obj["identifiers"]
    if isinstance(obj, list):
        if not all(isinstance(n, str) for n in obj):
            raise HrmEdgeError("identifier list must hold names (strings)", where)
        return {n: i for i, n in enumerate(obj) if i > 0 and n not in BLANK_NAMES}
    if isinstance(obj, dict):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in obj.values()):
            raise HrmEdgeError("identifier dict must map names to integer rows", where)
        return {str(k): int(v) for k, v in obj.items() if int(v) > 0 and k not in BLANK_NAMES}
    raise HrmEdgeError(f"identifiers must be a list of names or a dict name -> row, got {type(obj).__name__}",
                       where)


def read_identifiers(path: str | Path) -> dict[str, int]:
    """Name -> row from `identifiers.json` (or a dataset folder holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "identifiers.json"
    return parse_identifiers(read_json(p, "identifiers"), p)


def names_by_row(index: dict[str, int]) -> list[str | None]:
    """The inverse of a name -> row index: the name of every row (None for row 0 and unnamed rows)."""
    names: list[str | None] = [None] * (max(index.values()) + 1 if index else 0)
    for name, row in index.items():
        names[row] = name
    return names
