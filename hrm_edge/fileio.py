"""Small torch-free file helpers: content hashes and atomic writes (temp file in the target folder,
fsync, rename), so a crash or a bad input never leaves a half-written artifact behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Call `write(fileobj)` on a temp file in the target folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(data, indent=2, default=str) + "\n").encode()))


def read_json(path: str | Path, what: str = "JSON") -> Any:
    """Parse a JSON file, or raise one HrmEdgeError naming the file (missing, unreadable or malformed)."""
    from hrm_edge.errors import HrmEdgeError

    path = Path(path)
    if not path.is_file():
        raise HrmEdgeError(f"no such {what} file", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HrmEdgeError(f"malformed {what}: {exc}", path) from None
