"""How `--help` shows option types: no `<bool>` on flags, no Python `list[...]` types.

Typer 0.26+ renders its own type column, and that column prints a placeholder for every option:
`--json <bool>` (as if a flag took a value) and `--bundle <list[Path]>` (a Python type, for a
repeatable option). A flag shows no value; a repeatable option shows its element type with `...`
and says "Repeatable" in its help. Older typer (click's help) has neither leak, and `tidy()` is
then a no-op. tests/test_cli_help.py walks every command's help and fails on any leak.
"""

from __future__ import annotations

import re
from typing import Any

_LIST = re.compile(r"list\[([^\]]*)\]")


def tidy() -> None:
    """Patch typer's type display for options and arguments once (idempotent; a no-op where the hook is absent)."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover - typer without its own core
        return
    for cls in (TyperOption, TyperArgument):
        original = cls.__dict__.get("display_type_rich") or getattr(cls, "display_type_rich", None)
        if original is None or getattr(original, "_hrm_edge_tidy", False):
            continue
        cls.display_type_rich = _tidied(original)  # type: ignore[method-assign]


def _tidied(original: Any) -> Any:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None  # a flag takes no value; typer would print <bool>
        shown = original(self, ctx)
        if shown and _LIST.search(shown):
            shown = _LIST.sub(lambda m: m.group(1).lower(), shown)
            if not shown.endswith("..."):
                shown += "..."
        return shown

    display_type_rich._hrm_edge_tidy = True  # type: ignore[attr-defined]
    return display_type_rich
