"""One error type for every user-facing failure.

The CLI turns an `HrmEdgeError` into a single line on stderr and exit code 2, so bad input
(a malformed task, a foreign checkpoint, a bundle from another model) never shows a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path


class HrmEdgeError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingDependencyError(HrmEdgeError):
    """An optional backend (TensorRT, pycuda, a GPU) is not installed or not usable here."""


def first_sentence(message: str) -> str:
    """The first sentence of a library's exception message, on one line: quoted in an HrmEdgeError it
    is never cut mid-sentence (torch's miniz errors, for one, are a paragraph)."""
    flat = " ".join(str(message).split())
    m = re.match(r"(.+?[.!?])(\s|$)", flat)
    return (m.group(1) if m else flat).rstrip(".")
