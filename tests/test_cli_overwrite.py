"""`init` / `convert` never replace what the user has (issue 20, item 1): an existing checkpoint needs --force,
and a `<stem>.json` beside it that hrm-edge did not write (an ARC task) is refused even with --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_inprocess


def _one_line(r, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _task() -> str:
    return json.dumps({"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]})


@pytest.mark.parametrize("fmt", ["hrm-edge", "lite-script"])
def test_init_refuses_an_existing_checkpoint_without_force(fmt: str, tmp_path: Path) -> None:
    preset = "tiny" if fmt == "hrm-edge" else "tiny-lite"
    out = tmp_path / "hrm_arc_best.pt"
    out.write_bytes(b"my trained weights")
    line = _one_line(run_inprocess("init", "--preset", preset, "--format", fmt, "--out", str(out)))
    assert str(out) in line and "--force" in line
    assert out.read_bytes() == b"my trained weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hrm_arc_best.pt"]  # nothing left beside it
    r = run_inprocess("init", "--preset", preset, "--format", fmt, "--out", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != b"my trained weights"


def test_init_never_replaces_a_task_file_beside_the_checkpoint(tmp_path: Path) -> None:
    task = tmp_path / "mytask.json"
    task.write_text(_task())
    for extra in ([], ["--force"]):
        line = _one_line(run_inprocess("init", "--preset", "tiny", "--out", str(tmp_path / "mytask.pt"), *extra))
        assert str(task) in line and "not an hrm-edge checkpoint sidecar" in line
    assert task.read_text() == _task()
    assert not (tmp_path / "mytask.pt").exists()


def test_init_force_replaces_its_own_checkpoint_and_sidecar(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert run_inprocess("init", "--preset", "tiny", "--out", str(out), "--seed", "1").returncode == 0
    first = out.read_bytes()
    _one_line(run_inprocess("init", "--preset", "tiny", "--out", str(out), "--seed", "2"))
    assert out.read_bytes() == first
    assert run_inprocess("init", "--preset", "tiny", "--out", str(out), "--seed", "2", "--force").returncode == 0
    assert out.read_bytes() != first
    assert json.loads((tmp_path / "m.json").read_text())["format"] == "hrm-edge"


def test_convert_refuses_an_existing_output(tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    assert run_inprocess("init", "--preset", "tiny", "--out", str(src)).returncode == 0
    out = tmp_path / "dst.pt"
    out.write_bytes(b"keep")
    line = _one_line(run_inprocess("convert", str(src), "--out", str(out)))
    assert "--force" in line and out.read_bytes() == b"keep"
    assert run_inprocess("convert", str(src), "--out", str(out), "--force").returncode == 0
