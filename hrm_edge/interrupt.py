"""What a Ctrl-C leaves behind, said in one line.

A command that writes states, before each stage, what an interruption at that point keeps and
removes (`interrupt.outcome(...)`); `cli.main` prints it as `interrupted: ...` and exits 130.
The cleanup itself is done by the staged writes (fileio.StagedDir, atomic_write_*), which remove
their temp files on any exception, KeyboardInterrupt included: this module only reports it.
"""

from __future__ import annotations

_outcome: str | None = None


def outcome(text: str | None) -> None:
    """Record what an interruption from now on leaves behind (None: nothing to say)."""
    global _outcome
    _outcome = text


def nothing_written(out: object, existed: bool, partial: str = "its partial files were removed") -> None:
    """The common case: a staged output that only appears at the end."""
    kept = f"; the existing {out} was kept unchanged" if existed else ""
    outcome(f"nothing written to {out} ({partial}){kept}")


def describe() -> str:
    """The one line `cli.main` prints on Ctrl-C."""
    return f"interrupted: {_outcome}" if _outcome else "interrupted"
