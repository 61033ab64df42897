"""Small torch-free file helpers: content hashes and atomic writes (temp file in the target folder,
fsync, rename), so a crash or a bad input never leaves a half-written artifact behind."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
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


class StagedDir:
    """A hidden folder beside `out` that becomes `out` on `commit()` and vanishes on any exception.

    An existing `out` is moved aside, replaced, and put back if the rename fails; so a crash or a
    failed check never leaves a half-written dataset or bundle where the user looks. The folder
    gets the usual permissions (mkdir under the umask), not mkdtemp's private 0700.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.dir = self._sibling("tmp")
        self.dir.mkdir()
        self.committed = False

    def _sibling(self, tag: str) -> Path:
        return self.out.parent / f".{self.out.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"

    def __enter__(self) -> StagedDir:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self) -> Path:
        """Rename the staged folder to its destination, replacing (and then deleting) an old one."""
        old = None
        if self.out.exists():
            old = self._sibling("old")
            os.replace(self.out, old)
        try:
            os.replace(self.dir, self.out)
        except BaseException:
            if old is not None:
                os.replace(old, self.out)
            raise
        self.committed = True
        if old is not None:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        return self.out
