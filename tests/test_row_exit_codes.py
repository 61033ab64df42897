"""`compare` and `bench` exit 4 when a runtime's row failed, and still write the table and files (issue 20, item 6).

A runtime the user asked for that could not run (here: an engine file on a machine without TensorRT) must not
end in exit 0: a script checking the exit code would take the missing row for a success."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_inprocess, write_tasks


def _kit(tmp_path: Path, tiny_ckpt: Path) -> tuple[Path, Path]:
    tasks = write_tasks(tmp_path / "tasks", {"a1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}],
                                                     "test": [{"input": [[3, 4]]}]}})
    engine = tmp_path / "fake.engine"
    engine.write_bytes(b"not an engine")
    return tasks, engine


def test_compare_exits_4_on_a_failed_row_and_writes_the_report(tiny_ckpt: Path, tmp_path: Path) -> None:
    tasks, engine = _kit(tmp_path, tiny_ckpt)
    out = tmp_path / "cmp"
    r = run_inprocess("compare", str(tasks), "--ckpt", str(tiny_ckpt), "--engine", str(engine), "--augment", "1",
                      "--out-dir", str(out))
    assert r.returncode == 4, r.stderr
    assert "1 runtime row(s) failed (tensorrt fake.engine); exit code 4" in r.stderr
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "unavailable"]
    assert (out / "compare.md").is_file() and (out / "compare.png").is_file()


def test_compare_exits_0_when_every_row_ran(tiny_ckpt: Path, bundles, tmp_path: Path) -> None:
    tasks, _ = _kit(tmp_path, tiny_ckpt)
    r = run_inprocess("compare", str(tasks), "--ckpt", str(tiny_ckpt), "--bundle",
                      str(bundles[("tiny", "step", "max")].path), "--augment", "1", "--out-dir", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr


def test_bench_exits_4_on_a_failed_row_and_writes_the_results(tiny_ckpt: Path, tmp_path: Path) -> None:
    tasks, engine = _kit(tmp_path, tiny_ckpt)
    out = tmp_path / "b.json"
    r = run_inprocess("bench", str(tasks), "--ckpt", str(tiny_ckpt), "--engine", str(engine), "--puzzles", "2",
                      "--out", str(out))
    assert r.returncode == 4, r.stderr
    assert "1 runtime row(s) failed (tensorrt fake.engine); exit code 4" in r.stderr
    saved = json.loads(out.read_text())
    rows = saved["results"] if isinstance(saved, dict) else saved
    assert [row["status"] for row in rows] == ["ok", "unavailable"]
    r = run_inprocess("bench", str(tasks), "--ckpt", str(tiny_ckpt), "--puzzles", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
