"""The `hrm-edge` command: a typer app whose commands are thin calls into the rooms.

Each command group lives in `hrm_edge/commands/<name>.py` and exposes `register(app)`. Commands
raise `HrmEdgeError` for bad input; `main` turns that into one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from hrm_edge.commands import helpfmt
from hrm_edge.errors import HrmEdgeError

helpfmt.tidy()

app = typer.Typer(
    name="hrm-edge",
    help="Hierarchical Reasoning Model on the edge: ARC data, parity-checked ONNX export, solving and "
         "benchmarking on PyTorch, ONNX Runtime and TensorRT.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = ("demo", "model", "data", "train", "adapt", "export", "solve", "serve", "jetson")


def _version(value: bool) -> None:
    if value:
        from hrm_edge import __version__

        print(f"hrm-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Hierarchical Reasoning Model on the edge: ARC data, parity-checked ONNX export, solving and benchmarking on
    PyTorch, ONNX Runtime and TensorRT."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"hrm_edge.commands.{_name}").register(app)


def _click_exception_type() -> type[BaseException]:
    """click's ClickException, found through typer's public BadParameter (typer may vendor click)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _usage_line(exc: Any) -> str:
    """A usage error (unknown option, missing argument, bad value) as one line with where to look."""
    msg = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        where = ctx.command_path
    else:  # raised while parsing, before a context exists: name the command from argv
        names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None}
        where = " ".join(["hrm-edge", *[a for a in sys.argv[1:] if a in names][:1]])
    return f"error: {msg} (see {where} --help)"


def main() -> None:
    """Console entry point: every failure a user can cause is one stderr line, never a traceback.

    - HrmEdgeError (bad input, unwritable output): `error: <file>: <problem>`, its exit code (2).
    - usage errors (unknown option, bad value, missing argument): one `error:` line, exit 2.
    - Ctrl-C: one `interrupted: ...` line saying what was kept and removed (`interrupt.describe`), 130.
    Typer runs outside its standalone mode so these reach us; `--help` and typer.Exit codes pass through.
    """
    from hrm_edge import interrupt

    click_exception = _click_exception_type()
    try:
        code = app(standalone_mode=False, prog_name="hrm-edge")
    except HrmEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        code = 130
    except click_exception as exc:  # type: ignore[misc]
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `hrm-edge`: the help itself
            exc.show()  # type: ignore[attr-defined]
        else:
            print(_usage_line(exc), file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:  # end of input at a prompt
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    if code == 130:  # typer turns Ctrl-C into Exit(130) before we see it
        print(interrupt.describe(), file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
