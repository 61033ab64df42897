"""The `hrm-edge` command: a typer app whose commands are thin calls into the rooms.

Each command group lives in `hrm_edge/commands/<name>.py` and exposes `register(app)`. Commands
raise `HrmEdgeError` for bad input; `main` turns that into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C before `main` runs (importing typer, rich and the commands takes a fraction of a second): nothing
    has been read or written yet, so one line and exit 130, never a traceback from inside an import."""
    sys.stderr.write("interrupted: before the command started; nothing was written\n")
    sys.stderr.flush()
    os._exit(130)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# until the imports below are done; then the previous handler is back (importing this module from a test or a
# library changes nothing), and `main` makes Ctrl-C a KeyboardInterrupt it reports in one line
_STARTUP_HANDLER = signal.signal(signal.SIGINT, _interrupted_while_starting) if _main_thread() else None

import importlib  # noqa: E402
from typing import Any  # noqa: E402

import typer  # noqa: E402

from hrm_edge.runtime.threads import set_wait_policy  # noqa: E402

set_wait_policy()  # before anything imports torch: libgomp reads OMP_WAIT_POLICY once, when it loads

from hrm_edge.commands import helpfmt  # noqa: E402
from hrm_edge.errors import HrmEdgeError  # noqa: E402

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

if _STARTUP_HANDLER is not None:
    signal.signal(signal.SIGINT, _STARTUP_HANDLER)


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
    bad = _bad_value(exc, msg)
    return f"error: {msg}{bad} (see {where} --help)"


def _bad_value(exc: Any, msg: str) -> str:
    """` (got X)` for a rejected option value whose message does not echo it (typer's range checks do not)."""
    param = getattr(exc, "param", None)
    flags = list(getattr(param, "opts", []) or [])
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        for f in flags:
            value = argv[i + 1] if a == f and i + 1 < len(argv) else (a[len(f) + 1:] if a.startswith(f + "=") else None)
            if value is not None and value not in msg:
                return f" (got {value})"
    return ""


def main() -> None:
    """Console entry point: every failure a user can cause is one stderr line, never a traceback.

    - HrmEdgeError (bad input, unwritable output): `error: <file>: <problem>`, its exit code (2).
    - usage errors (unknown option, bad value, missing argument): one `error:` line, exit 2.
    - Ctrl-C: one `interrupted: ...` line saying what was kept and removed (`interrupt.describe`), 130.
    Typer runs outside its standalone mode so these reach us; `--help` and typer.Exit codes pass through.
    """
    from hrm_edge import interrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)  # from here a Ctrl-C is KeyboardInterrupt, said below
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
