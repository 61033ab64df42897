"""The `hrm-edge` command: a typer app whose commands are thin calls into the rooms.

Each command group lives in `hrm_edge/commands/<name>.py` and exposes `register(app)`. Commands
raise `HrmEdgeError` for bad input; `main` turns that into one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from hrm_edge.errors import HrmEdgeError

app = typer.Typer(
    name="hrm-edge",
    help="Hierarchical Reasoning Model on the edge: data, export with parity checks, engines, solving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Command modules, in the order `--help` lists them.
COMMAND_MODULES = ("model", "data", "train", "export", "solve")



def _version(value: bool) -> None:
    if value:
        from hrm_edge import __version__

        print(f"hrm-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Hierarchical Reasoning Model on the edge: data, export with parity checks, engines, solving."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"hrm_edge.commands.{_name}").register(app)


def main() -> None:
    """Console entry point: run the app, mapping HrmEdgeError to one stderr line and exit 2.

    Typer's standalone mode handles usage errors (exit 2) and `--help`; anything of ours that
    escapes a command is an HrmEdgeError and becomes a single line, never a traceback.
    """
    try:
        app()
    except HrmEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
