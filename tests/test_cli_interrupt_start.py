"""Ctrl-C in the first fraction of a second (while the CLI imports typer, rich and its commands) is one line and
exit 130, never a traceback from inside an import (issue 20, item 8); the install hint survives zsh."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT

# SIGINT delivered while `hrm_edge.cli` imports its command modules: deterministic, unlike a timed kill
_INTERRUPT_DURING_IMPORT = """
import importlib.abc, os, signal, sys
class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "hrm_edge.commands.helpfmt":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Hook())
sys.argv = ["hrm-edge", "--help"]
from hrm_edge.cli import main
main()
"""


def test_ctrl_c_while_the_cli_starts_is_one_line_and_exit_130() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.strip().splitlines() == ["interrupted: before the command started; nothing was written"]
    assert r.stdout == ""


def test_importing_the_cli_leaves_the_sigint_handler_alone() -> None:
    code = ("import signal; before = signal.getsignal(signal.SIGINT); import hrm_edge.cli; "
            "print(signal.getsignal(signal.SIGINT) is before)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert r.stdout.strip() == "True"


def test_the_tensorrt_install_hint_is_quoted_for_every_shell(monkeypatch) -> None:
    import builtins

    import pytest

    from hrm_edge.errors import MissingDependencyError
    from hrm_edge.runtime.tensorrt import import_tensorrt

    real = builtins.__import__

    def no_tensorrt(name, *a, **kw):
        if name == "tensorrt":
            raise ImportError("No module named 'tensorrt'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tensorrt)
    with pytest.raises(MissingDependencyError) as exc:
        import_tensorrt()
    assert "pip install 'hrm-edge[trt]'" in str(exc.value)
