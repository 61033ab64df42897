"""Where command output goes: rich tables on stdout, plain one-line messages on stderr.

A pipe or a file is not a terminal, and rich then assumes 80 columns: tables squash and cut names
(`arc-agi-1/evalu...`), long lines wrap. Output meant for grep and CI logs must keep one record
per line, so off a terminal tables get a wide canvas and messages bypass rich. COLUMNS is not
trusted there: it describes a terminal, and test runners and CI export it (pytest's children see 80).
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 240  # wide enough for every table hrm-edge prints; name columns fold rather than truncate


def stdout_console() -> Console:
    """rich Console for stdout: the terminal's width, or PIPE_WIDTH when piped or redirected."""
    con = Console()
    return con if con.is_terminal else Console(width=PIPE_WIDTH)


def say(msg: str) -> None:
    """One plain line on stderr: never wrapped, never styled, so each record stays one greppable line."""
    print(msg, file=sys.stderr, flush=True)
