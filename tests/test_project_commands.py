"""The README's test command (`make test`) as a user sees it: pytest's closing summary line is printed.

pyproject's addopts and the Makefile's pytest arguments together must not hide it (`-q` twice does).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_test_args() -> list[str]:
    """The arguments the Makefile's `test` target passes to pytest."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index("test: setup") + 1]
    for line in lines:  # the Makefile's own variables (`NAME ?= value`), as make expands them
        m = re.match(r"^([A-Z_]+)\s*\??[:]?=\s*(.*)$", line)
        if m:
            recipe = recipe.replace(f"$({m.group(1)})", m.group(2).strip())
    assert "$(" not in recipe.split("-m pytest", 1)[1], recipe
    return shlex.split(recipe.split("-m pytest", 1)[1])


def test_make_test_prints_pytest_summary_line(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_ok():\n    assert True\n")
    cmd = [sys.executable, "-m", "pytest", *make_test_args(), "-c", str(ROOT / "pyproject.toml"), "--rootdir",
           str(tmp_path), "-p", "no:cacheprovider", str(tmp_path / "test_one.py")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r"^=*\s*1 passed in [\d.]+s", p.stdout, re.M), p.stdout
