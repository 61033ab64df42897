"""A damaged bundle gets the same one line from every command that reads one (issue 20, item 2).

Each bundle file is cut at several offsets (empty, 23%, 90% of its bytes) and every command that takes a
bundle runs on it: exit 2, one `error:` line naming the damaged file, no traceback, no output written. A
checkpoint file given where the bundle folder belongs is named as a checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_inprocess, write_tasks

FILES = ["model.onnx", "puzzle_emb.npy", "puzzle_index.json", "manifest.json"]
CUTS = [0.0, 0.23, 0.9]


def _commands(b: Path, ckpt: Path, tasks: Path, out: Path) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(b)],
        "solve": ["solve", str(tasks), "--bundle", str(b), "--out", str(out / "s.json")],
        "compare": ["compare", str(tasks), "--ckpt", str(ckpt), "--bundle", str(b), "--out-dir", str(out / "cmp")],
        "bench": ["bench", str(tasks), "--bundle", str(b), "--out", str(out / "bench.json")],
        "build-engine": ["build-engine", str(b), "--out", str(out / "m.engine")],
        "serve": ["serve", "--bundle", str(b), "--port", "0"],
    }


def _one_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tasks(tmp_path_factory.mktemp("t"), {"a1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}],
                                                              "test": [{"input": [[3, 4]]}]}})


@pytest.mark.parametrize("name", FILES)
def test_every_bundle_command_refuses_a_cut_file_in_one_line(name: str, bundles, tiny_ckpt: Path, task_folder: Path,
                                                            tmp_path: Path) -> None:
    src = bundles[("tiny", "step", "max")].path
    b = tmp_path / "bundle"
    shutil.copytree(src, b)
    whole = (src / name).read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    for cut in CUTS:
        (b / name).write_bytes(whole[:int(len(whole) * cut)])
        for cmd, argv in _commands(b, tiny_ckpt, task_folder, out).items():
            line = _one_line(run_inprocess(*argv))
            assert str(b / name) in line, (cmd, cut, line)
            assert list(out.iterdir()) == [], (cmd, cut)  # nothing written
    (b / name).write_bytes(whole)


def test_cut_model_file_says_how_much_is_there(bundles, tmp_path: Path) -> None:
    src = bundles[("tiny", "step", "max")].path
    b = tmp_path / "bundle"
    shutil.copytree(src, b)
    whole = (b / "model.onnx").read_bytes()
    (b / "model.onnx").write_bytes(whole[:len(whole) // 2])
    line = _one_line(run_inprocess("verify", str(b)))
    assert f"{len(whole) // 2} of {len(whole)} bytes" in line and "sha256 differs" in line


def test_a_checkpoint_given_as_the_bundle_is_named_a_checkpoint(tiny_ckpt: Path, task_folder: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for cmd, argv in _commands(tiny_ckpt, tiny_ckpt, task_folder, out).items():
        line = _one_line(run_inprocess(*argv))
        assert "is a checkpoint file, not an export bundle folder" in line and str(tiny_ckpt) in line, (cmd, line)
        assert "codec" not in line
