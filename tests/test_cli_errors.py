"""Bad input as a user meets it: one stderr line that names the file and the problem, exit 2.

- checkpoint files that are empty, text, another format or truncated say so (never torch's
  `EOFError`, `KeyError: '101'` or a miniz paragraph cut mid-sentence);
- every option is checked before any work: each case below also names a checkpoint or task source
  that does not exist, so an option checked late would report the missing file instead;
- usage errors (unknown option, missing argument) are one line too;
- `tasks`: one exit-code rule for files and folders, and piped output keeps one problem per line
  and whole source names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import run_inprocess, small_checkpoint

from hrm_edge.data.arc import load_tasks
from hrm_edge.errors import first_sentence


def _one_line(r: Any, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


# --------------------------------------------------------------------------------------------------
# checkpoint files
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("ck") / "tiny10.pt")


def test_checkpoint_errors_say_what_the_file_is(native: Path, tmp_path: Path) -> None:
    data = native.read_bytes()
    lite_dict = {"model_state_dict": {"token_embedding.weight": torch.zeros(12, 8)}, "epoch": 1}
    foreign = tmp_path / "foreign.pt"
    torch.save(lite_dict, foreign)
    foreign_bytes = foreign.read_bytes()
    cases: dict[str, tuple[bytes, str]] = {
        "empty.pt": (b"", "empty file (0 bytes); expected a PyTorch checkpoint"),
        "notes.pt": (b"step: 100\nloss: 0.2\n",
                     "not a PyTorch checkpoint: it starts with text ('step: 100 loss: 0.2')"),
        "image.pt": (b"\x89PNG\r\n\x1a\n" + bytes(40), "not a PyTorch checkpoint: it is a PNG image"),
        "cut_foreign.pt": (foreign_bytes[: len(foreign_bytes) // 2],
                           f"truncated or corrupt: a zip archive ({len(foreign_bytes) // 2:,} bytes) without the "
                           "central directory a complete PyTorch checkpoint ends with; copy or download it again"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        line = _one_line(run_inprocess("info", str(tmp_path / name)))
        assert line == f"error: {tmp_path / name}: {message}"

    # a native checkpoint cut short next to its sidecar: the sidecar's recorded size gives N of M
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:1000])
    (tmp_path / "cut.json").write_text(native.with_suffix(".json").read_text())
    line = _one_line(run_inprocess("info", str(cut)))
    assert line == (f"error: {cut}: truncated: 1,000 of {len(data):,} bytes (the size recorded in cut.json); copy or "
                    "download it again")


def test_legacy_format_truncated_and_torch_messages_stay_whole(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(64)}, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:-100])
    line = _one_line(run_inprocess("info", str(legacy)))
    assert line.startswith(f"error: {legacy}: ") and "truncated" in line and "EOFError" not in line
    miniz = ("PytorchStreamReader failed reading zip archive: failed finding central directory. This is an internal "
             "miniz error. If you are seeing this error, there is a high likelihood")
    assert first_sentence(miniz) == "PytorchStreamReader failed reading zip archive: failed finding central directory"
    assert first_sentence("one\nline only") == "one line only"


# --------------------------------------------------------------------------------------------------
# every option before any work
# --------------------------------------------------------------------------------------------------
M = "missing.pt"  # never created: an option checked after loading would fail on this first
EARLY = [
    (["export", M, "--act", "bogus"], "--act must be one of step, unrolled, loop, got 'bogus'"),
    (["export", M, "--precision", "fp64"], "--precision must be one of fp32, fp16, int8, int8-qdq, got 'fp64'"),
    (["export", M, "--target", "trt-7"], "--target must be one of trt-8.5, trt-10, ort, got 'trt-7'"),
    (["export", M, "--halt", "sometimes"], "--halt must be one of max, adaptive, batch-mean, got 'sometimes'"),
    (["export", M, "--puzzle-dtype", "int4"], "--puzzle-dtype must be one of fp16, fp32, got 'int4'"),
    (["export", M, "--opset", "9"], "--opset 9 is outside the supported range 13..20"),
    (["export", M, "--segments", "0"], "--segments must be >= 1, got 0"),
    (["export", M, "--batch", "0"], "--batch must be >= 1, got 0"),
    (["export", M, "--batch", "many"], "--batch must be 'dynamic' or a positive integer, got 'many'"),
    (["export", M, "--l4-puzzles", "-1"], "--l4-puzzles must be >= 0, got -1"),
    (["export", M, "--profile", "nope"], "no such export profile"),
    (["verify", "missing-bundle", "--target", "x"], "--target must be one of trt-8.5, trt-10, ort, got 'x'"),
    (["solve", "missing-tasks", "--ckpt", M, "--runtime", "tflite"],
     "--runtime must be one of torch, onnxruntime, tensorrt, got 'tflite'"),
    (["solve", "missing-tasks", "--ckpt", M, "--halt", "x"], "--halt must be one of max, adaptive, batch-mean"),
    (["solve", "missing-tasks", "--ckpt", M, "--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
    (["solve", "missing-tasks", "--bundle", "b", "--provider", "NoSuchProvider"], "NoSuchProvider not available"),
    (["compare", "missing-tasks", "--ckpt", M, "--halt", "x"], "--halt must be one of"),
    (["compare", "missing-tasks", "--ckpt", M, "--device", "gpu0"], "--device must be cpu, cuda or cuda:N"),
    (["bench", "--ckpt", M, "--halt", "x"], "--halt must be one of"),
    (["bench", "--ckpt", M, "--device", "cuda:x"], "--device must be cpu, cuda or cuda:N, got 'cuda:x'"),
    (["init", "--preset", "nope", "--out", "x.pt"], "unknown preset 'nope'"),
    (["init", "--preset", "tiny", "--out", "x.pt", "--format", "onnx"],
     "--format must be one of hrm-edge, lite-script, got 'onnx'"),
    (["init", "--preset", "tiny", "--out", "x.pt", "--format", "lite-script"],
     "--format lite-script holds lite models; tiny is act-v1"),
    (["build-data", "--source", "missing-tasks", "--augment", "-1", "--out", "ds"], "--augment must be >= 0, got -1"),
    (["build-data", "--source", "missing-tasks", "--augment", "1", "--canvas", "0", "--out", "ds"],
     "--canvas must be in 1..255, got 0"),
    # usage errors found by the parser: still one line, with where to look
    (["tasks", "missing-tasks", "--canvas", "0"], "(see hrm-edge tasks --help)"),
    (["export", "--act", "step"], "Missing argument 'CKPT'"),
    (["export", M, "--bogus"], "No such option: --bogus"),
    (["solve", "missing-tasks", "--augment", "0"], "Invalid value for '--augment'"),
]


@pytest.mark.parametrize("argv, message", EARLY, ids=[" ".join(a[:1] + a[2:]) for a, _ in EARLY])
def test_options_are_checked_before_any_work(argv: list[str], message: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = run_inprocess(*argv)
    line = _one_line(r)
    assert message in line, line
    assert "tracing" not in r.stdout + r.stderr and list(tmp_path.iterdir()) == []


def test_usage_error_from_the_console_script_is_one_line(cli) -> None:
    r = cli("solve", "arc-agi-1/evaluation", "--ckpt", M, "--halt")
    assert _one_line(r) == "error: Option '--halt' requires an argument. (see hrm-edge solve --help)"


# --------------------------------------------------------------------------------------------------
# tasks: exit codes and piped output
# --------------------------------------------------------------------------------------------------
GOOD = {"train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}]}
RAGGED = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}
COLOUR = {"train": [{"input": [[1, 12]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}


def _write(folder: Path, tasks: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, task in tasks.items():
        (folder / f"{name}.json").write_text(json.dumps(task))
    return folder


def test_tasks_exit_codes_follow_one_rule(tmp_path: Path) -> None:
    good = _write(tmp_path / "good", {"a": GOOD, "b": GOOD})
    mixed = _write(tmp_path / "mixed", {"a": GOOD, "bad1": RAGGED, "bad2": COLOUR})
    assert run_inprocess("tasks", str(good / "a.json")).returncode == 0
    assert run_inprocess("tasks", str(good)).returncode == 0
    line = _one_line(run_inprocess("tasks", str(mixed / "bad1.json")))  # a single invalid file: that problem
    assert "bad1.json" in line and "ragged rows" in line
    r = run_inprocess("tasks", str(mixed))  # a folder with invalid tasks: the same exit code
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: 2 problem(s) in invalid tasks (listed above)"
    r = run_inprocess("tasks", str(mixed), "--json")
    assert r.returncode == 2 and len(json.loads(r.stdout)["problems"]) == 2
    r = run_inprocess("tasks", str(good), str(mixed))  # one bad source among good ones decides
    assert r.returncode == 2
    help_text = " ".join(run_inprocess("tasks", "--help").stdout.split())
    assert "Exit code: 0 when every task is valid; 2 when any task is invalid" in help_text.replace("│ ", "")


def test_tasks_piped_keeps_one_problem_per_line_and_whole_names(cli, tmp_path: Path) -> None:
    """Run as a subprocess with pipes (not a terminal), where rich assumes 80 columns (and pytest's
    children even see COLUMNS=80): the source name is longer than that, so are both problem lines."""
    folder = _write(tmp_path / "a_folder_name_long_enough_that_eighty_columns_cannot_hold_it",
                    {"fine": GOOD, "a_task_with_a_rather_long_identifier_ragged": RAGGED,
                     "another_task_with_a_rather_long_identifier_colour": COLOUR})
    problems = [str(e) for e in load_tasks(folder).errors]
    assert len(problems) == 2 and all(len(p) > 80 for p in problems) and len(str(folder)) > 80
    r = cli("tasks", str(folder))
    assert r.returncode == 2, r.stderr
    assert any(str(folder) in line for line in r.stdout.splitlines()), r.stdout  # not cut, not folded
    assert "…" not in r.stdout
    assert r.stderr.splitlines() == ["2 problems:", *(f"  {p}" for p in problems),
                                     "error: 2 problem(s) in invalid tasks (listed above)"]
