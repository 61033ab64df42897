"""One error type for every user-facing failure.

The CLI turns an `HrmEdgeError` into a single line on stderr and exit code 2, so bad input
(a malformed task, a foreign checkpoint, a bundle from another model) never shows a traceback.
"""

from __future__ import annotations

from pathlib import Path


class HrmEdgeError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingDependencyError(HrmEdgeError):
    """An optional backend (TensorRT, pycuda, a GPU) is not installed or not usable here."""
