"""Small torch-free file helpers: content hashes and atomic writes (temp file in the target folder,
fsync, rename), so a crash or a bad input never leaves a half-written artifact behind."""

from __future__ import annotations

import errno
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


def _umask() -> int:
    """The process umask (read by setting and restoring it: POSIX offers no pure getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------------
# output locations
# --------------------------------------------------------------------------------------------------
def check_output(path: str | Path, kind: str = "file", what: str = "output") -> Path:
    """Fail fast, before any work, if `path` cannot be written as a `kind` ("file" or "dir").

    Every command that writes calls this first, so an unwritable location costs the user one clear
    line (HrmEdgeError -> exit 2) instead of a traceback after minutes of work. The nearest existing
    ancestor must be a folder we can create entries in, probed by really creating (and removing) a
    temp file there: permission bits alone do not tell (root, read-only mounts, /proc).
    Nothing is left behind; missing parent folders are not created here.
    """
    from hrm_edge.errors import HrmEdgeError

    path = Path(path)
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir', got {kind!r}")
    if path.exists():
        if kind == "file" and path.is_dir():
            raise HrmEdgeError(f"cannot write {what}: it is an existing folder, expected a file path", path)
        if kind == "dir" and not path.is_dir():
            raise HrmEdgeError(f"cannot write {what}: it is an existing file, expected a folder path", path)
    ancestor = path.parent if not path.exists() or kind == "file" else path
    ancestor = Path(os.path.abspath(ancestor))
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise HrmEdgeError(f"cannot write {what}: {ancestor} is a file, not a folder", path)
    try:
        fd, probe = tempfile.mkstemp(prefix=".hrm-edge-probe-", dir=ancestor)
    except OSError as exc:
        raise HrmEdgeError(f"cannot write {what}: cannot create files in {ancestor} ({_why_unwritable(exc)})",
                           path) from None
    os.close(fd)
    os.unlink(probe)
    return path


def _why_unwritable(exc: OSError) -> str:
    """The reason a folder refused a new file, in words (ENOENT inside an existing folder is /proc's way)."""
    words = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted (read-only or immutable?)",
             errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on the device",
             errno.EDQUOT: "disk quota exceeded",
             errno.ENOENT: "the file system takes no new files there, like /proc and /sys"}
    return words.get(exc.errno or 0, (exc.strerror or type(exc).__name__).lower())


# --------------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Call `write(fileobj)` on a temp file in the target folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; the result must read like a normal write
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
