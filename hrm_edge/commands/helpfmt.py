"""How `--help` shows option types: no `<bool>` on flags, no `<int>` / `<path>` / Python `list[...]` types.

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
        cls.display_type_rich = _tidied(original, argument=cls is TyperArgument)  # type: ignore[method-assign]
    usage = getattr(TyperArgument, "_usage_display_name", None)
    if usage is not None and not getattr(usage, "_hrm_edge_tidy", False):
        TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]


# a value's placeholder by its Python type, where the option names none (typer would print <int>, <path>, ...)
_PLACEHOLDER = {int: "N", float: "X", str: "TEXT"}


def placeholder(param: Any) -> str | None:
    """The word shown after an option: its metavar, else one by its type (N, X, PATH, TEXT, a|b); never <type>."""
    from pathlib import Path
    from typing import get_args, get_origin

    if getattr(param, "metavar", None):
        return str(param.metavar)
    desc = getattr(param, "type_descriptor", None)
    if desc is None:  # pragma: no cover - typer before its own type descriptors
        return None
    if getattr(desc, "is_choice", False) and desc.choices:
        return "|".join(str(c) for c in desc.choices)
    annotation = desc.annotation
    if get_origin(annotation) is list:  # repeatable: one value shown, the help says "repeatable"
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "PATH"
    return _PLACEHOLDER.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _tidied(original: Any, argument: bool) -> Any:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False):
            return None  # a flag takes no value; typer would print <bool>
        if argument:
            return None  # the name column already shows the argument's metavar (TASKS, CKPT)
        return placeholder(self)  # a repeatable option shows one value: its help says "repeatable"

    display_type_rich._hrm_edge_tidy = True  # type: ignore[attr-defined]
    return display_type_rich


def _usage_name(self: Any) -> str:
    """An argument in the usage line: NAME when required, [NAME] when optional (typer 0.29 writes {NAME}, and a
    lowercase {bundle} where no metavar was given)."""
    name = str(self.metavar or self.name or "").upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


_usage_name._hrm_edge_tidy = True  # type: ignore[attr-defined]
