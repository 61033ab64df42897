"""What every writing command does with its output location, as a user sees it.

- An output it cannot write (a virtual file system, a file used as a folder, a folder where a file
  is expected, a folder that refuses new files) fails BEFORE any work: exit 2, exactly one stderr
  line naming the path and the reason, no traceback, nothing left on disk.
- Outputs honour the umask like a normal write (0644 files, 0755 folders under umask 022).
- Ctrl-C (a real SIGINT to the process group, as a terminal sends it) prints one line saying what
  was kept and what was removed, exits 130 and leaves nothing half-written.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_inprocess, small_checkpoint, small_real_tasks


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("outkit")
    task = small_real_tasks(1)[0]
    (d / "task.json").write_text(json.dumps(task.to_json()))
    return {"ckpt": small_checkpoint(d / "tiny10.pt"), "task": d / "task.json"}


# command -> (argv with OUT where the output goes, kind of output)
COMMANDS: dict[str, tuple[list[str], str]] = {
    "init": (["init", "--preset", "tiny", "--out", "OUT"], "file"),
    "build-data": (["build-data", "--source", "TASK", "--augment", "1", "--out", "OUT", "--quiet"], "dir"),
    "export": (["export", "CKPT", "--out", "OUT", "--l4-puzzles", "0"], "dir"),
    "solve": (["solve", "TASK", "--ckpt", "CKPT", "--augment", "1", "--out", "OUT"], "file"),
    "compare": (["compare", "TASK", "--ckpt", "CKPT", "--augment", "1", "--out-dir", "OUT"], "dir"),
    "bench": (["bench", "--ckpt", "CKPT", "--puzzles", "1", "--out", "OUT"], "file"),
}


def _argv(name: str, kit: dict[str, Path], out: Path | str) -> list[str]:
    subst = {"OUT": str(out), "TASK": str(kit["task"]), "CKPT": str(kit["ckpt"])}
    return [subst.get(a, a) for a in COMMANDS[name][0]]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _one_error_line(r: Any, *fragments: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


@pytest.fixture
def refusing_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder that refuses new files: mode 0555 for a normal user; for root (which ignores mode bits)
    the immutable attribute, the one mechanism that stops root too. Skipped where neither is possible."""
    d = tmp_path / "refusing"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        undo = ["chmod", "755", str(d)]
    else:
        chattr = shutil.which("chattr")
        if chattr is None or subprocess.run([chattr, "+i", str(d)], capture_output=True).returncode != 0:
            pytest.skip("running as root and the file system has no immutable attribute: no folder refuses root")
        undo = [chattr, "-i", str(d)]
    try:
        yield d
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_unwritable_outputs_fail_first_with_one_line(name: str, kit, tmp_path: Path, refusing_dir: Path) -> None:
    kind = COMMANDS[name][1]
    work = tmp_path / "work"
    work.mkdir()
    (work / "file.json").write_text("{}")
    (work / "folder").mkdir()
    before = _listing(tmp_path)
    cases = [
        ("/proc/hrm-edge-test/out", "cannot create files in /proc"),
        (str(work / "file.json" / "out"), "file.json is a file, not a folder"),
        (str(refusing_dir / "out"), f"cannot create files in {refusing_dir}"),
        (str(work / "folder"), "it is an existing folder, expected a file path") if kind == "file"
        else (str(work / "file.json"), "it is an existing file, expected a folder path"),
    ]
    for out, reason in cases:
        r = run_inprocess(*_argv(name, kit, out))  # the console script's code path, without a torch re-import
        _one_error_line(r, out, reason)
        assert "tracing" not in r.stdout + r.stderr  # refused before any work
    assert _listing(tmp_path) == before  # no probe file, no staged folder, no partial output
    assert (work / "file.json").read_text() == "{}"


def test_outputs_honour_the_umask(kit, tmp_path: Path) -> None:
    """Under umask 022 every file hrm-edge writes is 0644 and every folder 0755, like a normal write
    (mkstemp alone would make 0600 files and mkdtemp 0700 folders)."""
    old = os.umask(0o022)
    try:
        runs = [
            ["init", "--preset", "tiny", "--out", str(tmp_path / "ck.pt")],
            ["solve", str(kit["task"]), "--ckpt", str(kit["ckpt"]), "--augment", "1", "--out",
             str(tmp_path / "sub.json")],
            ["compare", str(kit["task"]), "--ckpt", str(kit["ckpt"]), "--augment", "1", "--out-dir",
             str(tmp_path / "cmp")],
            ["bench", "--ckpt", str(kit["ckpt"]), "--puzzles", "1", "--out", str(tmp_path / "bench.json")],
            # folders: build-data's dataset goes through the same StagedDir as export's bundle (not re-exported
            # here: an export with its parity ladder would triple this test's time)
            ["build-data", "--source", str(kit["task"]), "--augment", "1", "--out", str(tmp_path / "ds"), "--quiet"],
        ]
        for argv in runs:
            r = run_inprocess(*argv)
            assert r.returncode == 0, (argv, r.stderr)
    finally:
        os.umask(old)
    single = ["ck.pt", "ck.json", "sub.json", "sub_scores.json", "cmp/compare.json", "cmp/compare.md",
              "cmp/compare.png", "bench.json"]
    for rel in single:
        assert stat.S_IMODE((tmp_path / rel).stat().st_mode) == 0o644, rel
    for folder in ("ds", "cmp"):
        entries = [tmp_path / folder, *(tmp_path / folder).rglob("*")]
        assert len(entries) > 3, folder
        for p in entries:
            want = 0o755 if p.is_dir() else 0o644
            assert stat.S_IMODE(p.stat().st_mode) == want, (str(p), oct(p.stat().st_mode))
    assert not [p for p in tmp_path.rglob(".*") if p.name.startswith((".ck", ".sub", ".bench", ".ds"))]


def test_atomic_write_follows_a_stricter_umask(tmp_path: Path) -> None:
    """Not a hard-coded 0644: under umask 027 the same writes give 0640 files and 0750 folders."""
    from hrm_edge.fileio import StagedDir, atomic_write_json

    old = os.umask(0o027)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with StagedDir(tmp_path / "out") as staged:
            (staged.dir / "f.txt").write_text("x")
            staged.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "out" / "f.txt").stat().st_mode) == 0o640


def _interrupt(cwd: Path, argv: list[str], staged: str, wait: float) -> subprocess.CompletedProcess:
    """Start a long command, wait until its staged output exists (+ `wait` s), then Ctrl-C its process group."""
    argv = [sys.executable, "-m", "hrm_edge.cli", *argv]
    # SIGINT back to its default in the child: a test run started in the background of a shell inherits
    # SIG_IGN for it, and Python then never raises KeyboardInterrupt (Ctrl-C in a terminal is what we test)
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(str(cwd / staged)):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, f"{argv[3]} never staged its output"
            time.sleep(0.05)
        time.sleep(wait)
        assert p.poll() is None, "the command finished before it could be interrupted"
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def _interrupt_build(cwd: Path, extra: list[str]) -> subprocess.CompletedProcess:
    # 1000 copies of 800 tasks: the planning phase alone outlasts the 0.5 s wait many times over
    return _interrupt(cwd, ["build-data", "--source", "arc-agi-1", "--augment", "1000", "--out", "ds", "--quiet",
                            "--workers", "2", *extra], ".ds.tmp-*", 0.5)


def test_ctrl_c_in_build_data_says_what_was_kept_and_removed(tmp_path: Path) -> None:
    r = _interrupt_build(tmp_path, [])
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines() == ["interrupted: nothing written to ds (the partial build was removed)"]
    assert "Traceback" not in r.stderr and os.listdir(tmp_path) == []

    old = tmp_path / "ds"
    old.mkdir()
    (old / "mine.txt").write_text("an earlier dataset")
    r = _interrupt_build(tmp_path, ["--overwrite"])
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines() == [
        "interrupted: nothing written to ds (the partial build was removed); the existing ds was kept unchanged"]
    assert os.listdir(tmp_path) == ["ds"] and os.listdir(old) == ["mine.txt"]


def test_ctrl_c_in_export_removes_the_staged_bundle(kit, tmp_path: Path) -> None:
    """Interrupted while tracing or checking parity (the bundle is staged before tracing starts)."""
    r = _interrupt(tmp_path, ["export", str(kit["ckpt"]), "--out", "bundle"], ".bundle.tmp-*", 0.2)
    assert r.returncode == 130, r.stderr
    assert r.stderr.strip().splitlines() == ["interrupted: nothing written to bundle (the staged bundle was removed)"]
    assert "Traceback" not in r.stderr and os.listdir(tmp_path) == []
